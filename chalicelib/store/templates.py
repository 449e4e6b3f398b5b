"""Message templates with immutable versions (decision 30).

- The template: `<account>#TEMPLATES` / `<template_id>`: `name`, `channel`, `latest_version`, `created_at`.
  One partition per account, read with one Query per page of `GET /v1/templates`.
- Each version: `<account>#T#<template_id>` / `V#<version, 6 digits>`: `content`, `locales`, `created_at`,
  written once (a conditional put) and never changed.

A new version is put at the number after the highest one stored (the versions are the truth), then the
template's `latest_version` is raised to it if lower: a writer that dies between the two leaves the
template one version behind, and the next version, or a read of the latest, repairs it.
"""

from __future__ import annotations

import time
from typing import Any

from chalicelib.domain.errors import Conflict, NotFound
from chalicelib.settings import get_settings
from chalicelib.store import aws, keys

VERSION_PREFIX = "V#"
# Two writers putting the same new version: the loser tries the next number this many times.
PUT_TRIES = 5


def _table() -> str:
    return get_settings().main_table


def _catalog_pk(account_id: str) -> str:
    return f"{account_id}#TEMPLATES"


def _versions_pk(account_id: str, template_id: str) -> str:
    return f"{account_id}#T#{template_id}"


def _version_sk(version: int) -> str:
    return f"{VERSION_PREFIX}{version:06d}"


def create_template(account_id: str, name: str, channel: str, content: dict[str, Any], locales: dict[str, Any]) -> str:
    """A new template at version 1; its id."""
    template_id = keys.new_id("tpl")
    now = time.time()
    _put_version(account_id, template_id, 1, content, locales, now)
    aws.dynamodb().put_item(
        TableName=_table(),
        Item=aws.to_item(
            {
                "pk": _catalog_pk(account_id),
                "sk": template_id,
                "id": template_id,
                "name": name,
                "channel": channel,
                "latest_version": 1,
                "created_at": now,
            }
        ),
        ConditionExpression="attribute_not_exists(pk)",
    )
    return template_id


def get_template(account_id: str, template_id: str) -> dict[str, Any]:
    found = aws.dynamodb().get_item(
        TableName=_table(), Key=aws.to_item({"pk": _catalog_pk(account_id), "sk": template_id}), ConsistentRead=True
    )
    if "Item" not in found:
        raise NotFound(detail=f"no template {template_id}")
    return aws.from_item(found["Item"])


def delete_template(account_id: str, template_id: str) -> None:
    """Remove the template, then its versions (campaigns keep the copy of the version they pinned)."""
    deleted = aws.write_if(
        aws.dynamodb().delete_item,
        TableName=_table(),
        Key=aws.to_item({"pk": _catalog_pk(account_id), "sk": template_id}),
        ConditionExpression="attribute_exists(pk)",
    )
    if deleted is None:
        raise NotFound(detail=f"no template {template_id}")
    pk = _versions_pk(account_id, template_id)
    versions = aws.query_all(
        {
            "TableName": _table(),
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": aws.to_values({":pk": pk}),
            "ProjectionExpression": "sk",
        }
    )
    for item in list(versions):
        aws.dynamodb().delete_item(TableName=_table(), Key={"pk": {"S": pk}, "sk": item["sk"]})


def templates_page(account_id: str, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    params: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": aws.to_values({":pk": _catalog_pk(account_id)}),
        "Limit": limit,
        "ConsistentRead": True,
    }
    if after:
        params["ExclusiveStartKey"] = aws.to_item({"pk": _catalog_pk(account_id), "sk": after})
    answer = aws.dynamodb().query(**params)
    last = answer.get("LastEvaluatedKey")
    return [aws.from_item(item) for item in answer.get("Items", [])], (last["sk"]["S"] if last else None)


def get_version(account_id: str, template_id: str, version: int | None = None) -> dict[str, Any]:
    """One version (the latest stored when `version` is None)."""
    pk = _versions_pk(account_id, template_id)
    if version is None:
        answer = aws.dynamodb().query(
            TableName=_table(),
            KeyConditionExpression="pk = :pk AND begins_with(sk, :v)",
            ExpressionAttributeValues=aws.to_values({":pk": pk, ":v": VERSION_PREFIX}),
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = answer.get("Items", [])
        if not items:
            raise NotFound(detail=f"no template {template_id}")
        return aws.from_item(items[0])
    found = aws.dynamodb().get_item(
        TableName=_table(), Key=aws.to_item({"pk": pk, "sk": _version_sk(version)}), ConsistentRead=True
    )
    if "Item" not in found:
        raise NotFound(detail=f"template {template_id} has no version {version}")
    return aws.from_item(found["Item"])


def add_version(account_id: str, template_id: str, content: dict[str, Any], locales: dict[str, Any]) -> int:
    """Store a new version after the highest one; its number."""
    get_template(account_id, template_id)  # another account's id, or a deleted one, is a 404
    for _ in range(PUT_TRIES):
        version = int(get_version(account_id, template_id)["version"]) + 1
        if _put_version(account_id, template_id, version, content, locales, time.time()):
            _raise_latest(account_id, template_id, version)
            return version
    raise Conflict(detail="other versions of this template are being written at the same time; try again")


def _put_version(
    account_id: str, template_id: str, version: int, content: dict[str, Any], locales: dict[str, Any], now: float
) -> bool:
    written = aws.write_if(
        aws.dynamodb().put_item,
        TableName=_table(),
        Item=aws.to_item(
            {
                "pk": _versions_pk(account_id, template_id),
                "sk": _version_sk(version),
                "version": version,
                "content": content,
                "locales": locales,
                "created_at": now,
            }
        ),
        ConditionExpression="attribute_not_exists(pk)",
    )
    return written is not None


def _raise_latest(account_id: str, template_id: str, version: int) -> None:
    aws.write_if(
        aws.dynamodb().update_item,
        TableName=_table(),
        Key=aws.to_item({"pk": _catalog_pk(account_id), "sk": template_id}),
        UpdateExpression="SET latest_version = :v",
        ConditionExpression="attribute_exists(pk) AND latest_version < :v",
        ExpressionAttributeValues=aws.to_values({":v": version}),
    )
