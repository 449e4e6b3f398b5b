"""Inbound numbers (decision 40): the numbers an account sends from and takes replies on. `NUMBER#<number>`
says whose a number is (one account at a time) and what its HELP answer is; `<account>#NUMBERS` /
`<number>` lists them. The owner item is written first: an index item without it is not listed."""

from __future__ import annotations

import time
from typing import Any

from chalicelib.domain.errors import Conflict, NotFound
from chalicelib.settings import get_settings
from chalicelib.store import aws, keys


def _table() -> str:
    return get_settings().main_table


def register(account_id: str, number: str, help_text: str, channel: str = "sms") -> dict[str, Any]:
    """The number (`channel` sms), Viber service id or page id taken by the account (again: its help text
    replaced); 409 when another account has it."""
    item = {"number": number, "account": account_id, "help_text": help_text, "created_at": time.time()}
    if channel != "sms":
        item["channel"] = channel
    written = aws.write_if(
        aws.dynamodb().put_item,
        TableName=_table(),
        Item=aws.to_item({"pk": keys.number_owner_pk(number), "sk": "-", **item}),
        ConditionExpression="attribute_not_exists(pk) OR account = :me",
        ExpressionAttributeValues=aws.to_values({":me": account_id}),
    )
    if written is None:
        raise Conflict(detail=f"the number {number} is registered by another account")
    aws.dynamodb().put_item(
        TableName=_table(), Item=aws.to_item({"pk": keys.numbers_pk(account_id), "sk": number, **item})
    )
    return item


def owner(number: str) -> dict[str, Any] | None:
    """The number's registration (account, help text), or None when no account has it."""
    found = aws.dynamodb().get_item(
        TableName=_table(), Key=aws.to_item({"pk": keys.number_owner_pk(number), "sk": "-"})
    )
    return aws.from_item(found["Item"]) if "Item" in found else None


def get_number(account_id: str, number: str) -> dict[str, Any]:
    found = aws.dynamodb().get_item(
        TableName=_table(), Key=aws.to_item({"pk": keys.numbers_pk(account_id), "sk": number}), ConsistentRead=True
    )
    if "Item" not in found:
        raise NotFound(detail=f"no number {number}")
    return aws.from_item(found["Item"])


def numbers_page(account_id: str, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    return aws.partition_page(_table(), keys.numbers_pk(account_id), after=after, limit=limit)


def release(account_id: str, number: str) -> None:
    """The number is the account's no longer: replies to it are refused from now on."""
    get_number(account_id, number)
    aws.write_if(
        aws.dynamodb().delete_item,
        TableName=_table(),
        Key=aws.to_item({"pk": keys.number_owner_pk(number), "sk": "-"}),
        ConditionExpression="account = :me",
        ExpressionAttributeValues=aws.to_values({":me": account_id}),
    )
    aws.dynamodb().delete_item(TableName=_table(), Key=aws.to_item({"pk": keys.numbers_pk(account_id), "sk": number}))
