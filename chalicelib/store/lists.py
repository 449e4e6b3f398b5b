"""Recipient lists: one item for the list, one per recipient keyed by its E.164 number."""

from __future__ import annotations

import time
from typing import Any

from chalicelib.domain.errors import NotFound
from chalicelib.settings import get_settings
from chalicelib.store import aws, keys

BATCH_GET = 100
BATCH_WRITE = 25


def create_list(account_id: str, name: str) -> dict[str, Any]:
    list_id = keys.new_id("lst")
    item = {
        "pk": keys.list_pk(account_id, list_id),
        "sk": keys.META,
        "id": list_id,
        "name": name,
        "recipient_count": 0,
        "created_at": time.time(),
    }
    aws.dynamodb().put_item(TableName=get_settings().main_table, Item=aws.to_item(item))
    return item


def get_list(account_id: str, list_id: str) -> dict[str, Any]:
    found = aws.dynamodb().get_item(
        TableName=get_settings().main_table,
        Key=aws.to_item({"pk": keys.list_pk(account_id, list_id), "sk": keys.META}),
        ConsistentRead=True,
    )
    if "Item" not in found:
        raise NotFound(detail=f"list {list_id} does not exist")
    return aws.from_item(found["Item"])


def existing_phones(account_id: str, list_id: str, phones: list[str]) -> set[str]:
    """Which of these numbers the list already holds (batched reads: reads cost a quarter of writes)."""
    pk = keys.list_pk(account_id, list_id)
    table = get_settings().main_table
    found: set[str] = set()
    for start in range(0, len(phones), BATCH_GET):
        request: dict[str, Any] = {
            table: {
                "Keys": [
                    aws.to_item({"pk": pk, "sk": keys.recipient_sk(p)}) for p in phones[start : start + BATCH_GET]
                ],
                "ProjectionExpression": "sk",
                "ConsistentRead": True,  # a batch just written must count as already listed
            }
        }
        while request:
            answer = aws.dynamodb().batch_get_item(RequestItems=request)
            for item in answer["Responses"].get(table, []):
                found.add(item["sk"]["S"].removeprefix(keys.RECIPIENT_PREFIX))
            request = answer.get("UnprocessedKeys") or {}
    return found


def put_recipients(account_id: str, list_id: str, rows: list[tuple[str, dict[str, Any]]]) -> int:
    """Write new recipients and add them to the list's count; returns the list's new count.

    The count grows by what was written even when a later write fails, so a retried request, which
    finds those rows already listed, leaves the count right.
    """
    pk = keys.list_pk(account_id, list_id)
    added_at = int(time.time() * 1000)
    written = 0
    try:
        for start in range(0, len(rows), BATCH_WRITE):
            batch = rows[start : start + BATCH_WRITE]
            _write_batch(pk, batch, added_at)
            written += len(batch)
    finally:
        if written:
            count = _add_to_count(pk, written)
    return count


def _write_batch(pk: str, rows: list[tuple[str, dict[str, Any]]], added_at: int) -> None:
    table = get_settings().main_table
    request: dict[str, Any] = {
        table: [
            {
                "PutRequest": {
                    "Item": aws.to_item({"pk": pk, "sk": keys.recipient_sk(p), "params": params, "added_at": added_at})
                }
            }
            for p, params in rows
        ]
    }
    while request:
        answer = aws.dynamodb().batch_write_item(RequestItems=request)
        request = answer.get("UnprocessedItems") or {}


def _add_to_count(pk: str, added: int) -> int:
    updated = aws.dynamodb().update_item(
        TableName=get_settings().main_table,
        Key=aws.to_item({"pk": pk, "sk": keys.META}),
        UpdateExpression="ADD recipient_count :n",
        ExpressionAttributeValues=aws.to_values({":n": added}),
        ReturnValues="UPDATED_NEW",
    )
    return int(updated["Attributes"]["recipient_count"]["N"])


def recipients_page(
    account_id: str, list_id: str, *, after_sk: str | None, limit: int, added_before_ms: int | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Recipients in key order after `after_sk`; the second value is where the next page starts, or None."""
    params: dict[str, Any] = {
        "TableName": get_settings().main_table,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :r)",
        "ExpressionAttributeValues": {
            ":pk": {"S": keys.list_pk(account_id, list_id)},
            ":r": {"S": keys.RECIPIENT_PREFIX},
        },
        "Limit": limit,
    }
    if after_sk:
        params["ExclusiveStartKey"] = {"pk": {"S": keys.list_pk(account_id, list_id)}, "sk": {"S": after_sk}}
    if added_before_ms is not None:
        # A campaign's audience is the list as it stood when the campaign started.
        params["FilterExpression"] = "added_at <= :started"
        params["ExpressionAttributeValues"][":started"] = {"N": str(added_before_ms)}
    answer = aws.dynamodb().query(**params)
    items = [aws.from_item(i) for i in answer.get("Items", [])]
    last = answer.get("LastEvaluatedKey")
    return items, (last["sk"]["S"] if last else None)
