"""Message templates with immutable versions (decision 30).

- The template: `<account>#TEMPLATES` / `<template_id>`: `name`, `channel`, `latest_version`, `created_at`.
  One partition per account, read with one Query per page of `GET /v1/templates`.
- Each version: `<account>#T#<template_id>` / `V#<version, 6 digits>`: `content`, `locales`, `created_at`,
  written once (a conditional put) and never changed.

A new version is put at the number after the highest one stored (the versions are the truth), then the
template's `latest_version` is raised to it if lower: a writer that dies between the two leaves the
template's `latest_version` one behind (reads of the latest ask the versions), and the next version
raises it.
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


def _version_sk(version: int) -> str:
    return f"{VERSION_PREFIX}{version:06d}"


def create_template(
    account_id: str, name: str, channel: str, content: dict[str, Any], locales: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new template at version 1: the template and its version, as stored."""
    template_id = keys.new_id("tpl")
    now = time.time()
    version = _put_version(account_id, template_id, 1, content, locales, now)
    assert version is not None  # a new id has no versions
    template = {
        "id": template_id,
        "name": name,
        "channel": channel,
        "latest_version": 1,
        "created_at": now,
    }
    if languages := whatsapp_languages_of(content, locales):
        template["whatsapp_languages"] = sorted(languages)
    aws.dynamodb().put_item(
        TableName=_table(),
        Item=aws.to_item({"pk": keys.templates_pk(account_id), "sk": template_id, **template}),
        ConditionExpression="attribute_not_exists(pk)",
    )
    return template, version


def get_template(account_id: str, template_id: str) -> dict[str, Any]:
    found = aws.dynamodb().get_item(
        TableName=_table(),
        Key=aws.to_item({"pk": keys.templates_pk(account_id), "sk": template_id}),
        ConsistentRead=True,
    )
    if "Item" not in found:
        raise NotFound(detail=f"no template {template_id}")
    return aws.from_item(found["Item"])


def delete_template(account_id: str, template_id: str) -> None:
    """Remove the template, then its versions (campaigns keep the copy of the version they pinned)."""
    deleted = aws.write_if(
        aws.dynamodb().delete_item,
        TableName=_table(),
        Key=aws.to_item({"pk": keys.templates_pk(account_id), "sk": template_id}),
        ConditionExpression="attribute_exists(pk)",
    )
    if deleted is None:
        raise NotFound(detail=f"no template {template_id}")
    pk = keys.template_versions_pk(account_id, template_id)
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
    return aws.partition_page(_table(), keys.templates_pk(account_id), after=after, limit=limit)


def get_version(account_id: str, template_id: str, version: int | None = None) -> dict[str, Any]:
    """One version (the latest stored when `version` is None)."""
    pk = keys.template_versions_pk(account_id, template_id)
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


def add_version(account_id: str, template_id: str, content: dict[str, Any], locales: dict[str, Any]) -> dict[str, Any]:
    """Store a new version after the highest one (of a template the caller found); the version as stored."""
    for _ in range(PUT_TRIES):
        number = int(get_version(account_id, template_id)["version"]) + 1
        version = _put_version(account_id, template_id, number, content, locales, time.time())
        if version is not None:
            _raise_latest(account_id, template_id, number, whatsapp_languages_of(content, locales))
            return version
    raise Conflict(detail="other versions of this template are being written at the same time; try again")


def _put_version(
    account_id: str, template_id: str, number: int, content: dict[str, Any], locales: dict[str, Any], now: float
) -> dict[str, Any] | None:
    """Write version `number` if no version has it; the version as stored, or None."""
    version = {"version": number, "content": content, "locales": locales, "created_at": now}
    written = aws.write_if(
        aws.dynamodb().put_item,
        TableName=_table(),
        Item=aws.to_item(
            {"pk": keys.template_versions_pk(account_id, template_id), "sk": _version_sk(number), **version}
        ),
        ConditionExpression="attribute_not_exists(pk)",
    )
    return version if written is not None else None


def _raise_latest(account_id: str, template_id: str, version: int, languages: set[str] | None = None) -> None:
    """The template's latest version moves on; a WhatsApp template's approved languages gain the version's."""
    key = aws.to_item({"pk": keys.templates_pk(account_id), "sk": template_id})
    aws.write_if(
        aws.dynamodb().update_item,
        TableName=_table(),
        Key=key,
        UpdateExpression="SET latest_version = :v",
        ConditionExpression="attribute_exists(pk) AND latest_version < :v",
        ExpressionAttributeValues=aws.to_values({":v": version}),
    )
    if languages:
        found = aws.dynamodb().get_item(TableName=_table(), Key=key, ConsistentRead=True).get("Item")
        known = set(aws.from_item(found).get("whatsapp_languages") or []) if found else set()
        if found and not languages <= known:
            aws.dynamodb().update_item(
                TableName=_table(),
                Key=key,
                UpdateExpression="SET whatsapp_languages = :l",
                ExpressionAttributeValues=aws.to_values({":l": sorted(known | languages)}),
            )


def whatsapp_languages_of(content: dict[str, Any], locales: dict[str, Any]) -> set[str]:
    """`<template name>|<language>` of each approved WhatsApp template a version names."""
    return {
        f"{part['whatsapp']['template_name']}|{part['whatsapp']['locale']}"
        for part in (content, *locales.values())
        if part.get("whatsapp")
    }


def whatsapp_languages(account_id: str) -> dict[str, set[str]]:
    """The account's WhatsApp templates (by approved name) and the languages its template resources give each."""
    items = aws.query_all(
        {
            "TableName": _table(),
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": aws.to_values({":pk": keys.templates_pk(account_id)}),
            "ProjectionExpression": "whatsapp_languages",
        }
    )
    known: dict[str, set[str]] = {}
    for item in (aws.from_item(raw) for raw in items):
        for entry in item.get("whatsapp_languages") or []:
            name, _, language = str(entry).rpartition("|")
            known.setdefault(name, set()).add(language)
    return known
