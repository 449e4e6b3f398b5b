"""Reply handlers (decision 45): `<account>#HANDLERS` / `<handler id>`, the definition as given, `matched`
(messages it took) and when it was made. An account has a few: every inbound message reads them in one
Query."""

from __future__ import annotations

import time
from typing import Any

from chalicelib.domain.errors import NotFound
from chalicelib.settings import get_settings
from chalicelib.store import aws, keys

# Handlers an account may have (each inbound message runs through all of them).
MAX_HANDLERS = 50


def _table() -> str:
    return get_settings().main_table


def create(account_id: str, definition: dict[str, Any]) -> dict[str, Any]:
    item = {**definition, "id": keys.new_id("hdl"), "matched": 0, "created_at": time.time()}
    aws.dynamodb().put_item(
        TableName=_table(),
        Item=aws.to_item({"pk": keys.reply_handlers_pk(account_id), "sk": item["id"], **item}),
        ConditionExpression="attribute_not_exists(pk)",
    )
    return item


def get(account_id: str, handler_id: str) -> dict[str, Any]:
    found = aws.dynamodb().get_item(
        TableName=_table(), Key=aws.to_item({"pk": keys.reply_handlers_pk(account_id), "sk": handler_id})
    )
    if "Item" not in found:
        raise NotFound(detail=f"no reply handler {handler_id}")
    return aws.from_item(found["Item"])


def all_of(account_id: str) -> list[dict[str, Any]]:
    """Every handler of the account, oldest first (ids sort by creation)."""
    params = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": aws.to_values({":pk": keys.reply_handlers_pk(account_id)}),
    }
    return sorted((aws.from_item(item) for item in aws.query_all(params)), key=lambda h: float(h["created_at"]))


def handlers_page(account_id: str, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    return aws.partition_page(_table(), keys.reply_handlers_pk(account_id), after=after, limit=limit)


def delete(account_id: str, handler_id: str) -> None:
    gone = aws.write_if(
        aws.dynamodb().delete_item,
        TableName=_table(),
        Key=aws.to_item({"pk": keys.reply_handlers_pk(account_id), "sk": handler_id}),
        ConditionExpression="attribute_exists(pk)",
    )
    if gone is None:
        raise NotFound(detail=f"no reply handler {handler_id}")


def count_match(account_id: str, handler_id: str) -> None:
    aws.write_if(
        aws.dynamodb().update_item,
        TableName=_table(),
        Key=aws.to_item({"pk": keys.reply_handlers_pk(account_id), "sk": handler_id}),
        UpdateExpression="ADD matched :one",
        ConditionExpression="attribute_exists(pk)",
        ExpressionAttributeValues=aws.to_values({":one": 1}),
    )
