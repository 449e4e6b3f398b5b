"""Sending limits shared by campaigns: per sender (a number or sender id several campaigns send from) and
per destination country, each a rate per second that every campaign of the account sending through it
keeps between them (decision 25).

One item per limit under `<account>#LIMITS` (sort key `sender#<sender>` or `country#<ISO code>`) holds
the rate and is the limit's pacing ledger too (`next_at`, store/pace.py): a chunk takes its span there,
so a deleted limit paces nothing from then on. Dispatch reads an account's limits with one Query per
campaign per invocation.
"""

from __future__ import annotations

import time
from typing import Any

from chalicelib.domain.errors import NotFound
from chalicelib.settings import get_settings
from chalicelib.store import aws, pace


def _pk(account_id: str) -> str:
    return f"{account_id}#LIMITS"


def _key(account_id: str, kind: str, name: str) -> dict[str, Any]:
    return aws.to_item({"pk": _pk(account_id), "sk": f"{kind}#{name}"})


def put_limit(account_id: str, kind: str, name: str, rate_per_second: float) -> dict[str, Any]:
    """Create or change a limit (its ledger, if it has one, is kept); the limit as stored."""
    answer = aws.dynamodb().update_item(
        TableName=get_settings().main_table,
        Key=_key(account_id, kind, name),
        UpdateExpression="SET kind = :kind, #name = :name, rate_per_second = :rate, updated_at = :now",
        ExpressionAttributeNames={"#name": "name"},
        ExpressionAttributeValues=aws.to_values(
            {":kind": kind, ":name": name, ":rate": rate_per_second, ":now": time.time()}
        ),
        ReturnValues="ALL_NEW",
    )
    return aws.from_item(answer["Attributes"])


def get_limit(account_id: str, kind: str, name: str) -> dict[str, Any]:
    found = aws.dynamodb().get_item(
        TableName=get_settings().main_table, Key=_key(account_id, kind, name), ConsistentRead=True
    )
    if "Item" not in found:
        raise NotFound(detail=f"no {kind} limit for {name}")
    return aws.from_item(found["Item"])


def delete_limit(account_id: str, kind: str, name: str) -> None:
    answer = aws.dynamodb().delete_item(
        TableName=get_settings().main_table, Key=_key(account_id, kind, name), ReturnValues="ALL_OLD"
    )
    if "Attributes" not in answer:
        raise NotFound(detail=f"no {kind} limit for {name}")


def account_limits(account_id: str) -> list[dict[str, Any]]:
    """Every limit of the account, senders then countries, each by name."""
    params = {
        "TableName": get_settings().main_table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": _pk(account_id)}},
    }
    return [aws.from_item(item) for item in aws.query_all(params)]


def take_span(account_id: str, kind: str, name: str, *, count: int, rate: float, earliest: float) -> float | None:
    """The start of a span of `count` sends on the limit's ledger, or None when the limit was deleted."""
    key = _key(account_id, kind, name)
    try:
        return pace.take(key["pk"]["S"], key["sk"]["S"], count=count, rate=rate, earliest=earliest, limit=True)
    except pace.Unpaced:
        return None
