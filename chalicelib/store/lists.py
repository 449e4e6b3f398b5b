"""Recipient lists: one item for the list, one per recipient keyed by its E.164 number, spread over
keys.LIST_BUCKETS partition keys."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib.domain.errors import NotFound
from chalicelib.settings import get_settings
from chalicelib.store import aws, keys

# Conditional puts in flight at once while a batch of recipients is written.
WRITERS = 32


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


def put_recipients(account_id: str, list_id: str, rows: list[tuple[str, dict[str, Any]]]) -> tuple[int, set[str]]:
    """Write recipients, each only if absent, and add the new ones to the list's count.

    The conditional put is also the duplicate check: two uploads racing with the same number count it
    once. Returns the list's new count and the numbers already listed. The count grows by what was written even
    when a later write fails, so a retried request, which finds those rows listed, leaves it right.
    """
    added_at = int(time.time() * 1000)
    table = get_settings().main_table
    written = 0
    raced: set[str] = set()

    def put(row: tuple[str, dict[str, Any]]) -> bool:
        phone, params = row
        item = {
            "pk": keys.list_recipient_pk(account_id, list_id, phone),
            "sk": keys.recipient_sk(phone),
            "params": params,
            "added_at": added_at,
        }
        answer = aws.write_if(
            aws.dynamodb().put_item,
            TableName=table,
            Item=aws.to_item(item),
            ConditionExpression="attribute_not_exists(pk)",
        )
        return answer is not None

    try:
        with ThreadPoolExecutor(max_workers=WRITERS) as pool:
            futures = {pool.submit(put, row): row[0] for row in rows}
            errors = []
            for future, phone in futures.items():
                if future.exception() is not None:
                    errors.append(future.exception())
                elif future.result():
                    written += 1
                else:
                    raced.add(phone)
            if errors:
                raise errors[0]  # type: ignore[misc]
    finally:
        count = _add_to_count(keys.list_pk(account_id, list_id), written)
    return count, raced


def _add_to_count(pk: str, added: int) -> int:
    updated = aws.dynamodb().update_item(
        TableName=get_settings().main_table,
        Key=aws.to_item({"pk": pk, "sk": keys.META}),
        UpdateExpression="ADD recipient_count :n",
        ExpressionAttributeValues=aws.to_values({":n": added}),
        ReturnValues="ALL_NEW",  # UPDATED_NEW leaves the count out when 0 was added
    )
    return int(updated["Attributes"]["recipient_count"]["N"])


def recipients_page(
    account_id: str, list_id: str, *, after: str | None, limit: int, added_before_ms: int | None = None
) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
    """Recipients bucket by bucket after position `after`: (position, item) pairs and where to continue,
    or None when the list is done."""
    query: dict[str, Any] = {
        "TableName": get_settings().main_table,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :r)",
        "ExpressionAttributeValues": {":r": {"S": keys.RECIPIENT_PREFIX}},
    }
    if added_before_ms is not None:
        # A campaign's audience is the list as it stood when the campaign started.
        query["FilterExpression"] = "added_at <= :started"
        query["ExpressionAttributeValues"][":started"] = {"N": str(added_before_ms)}
    buckets = [keys.list_bucket_pk(account_id, list_id, b) for b in range(keys.LIST_BUCKETS)]
    return aws.page_over_buckets(buckets, query, after=after, limit=limit)
