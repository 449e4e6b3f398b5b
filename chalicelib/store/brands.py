"""Email brands: `<account>#BRANDS` / `<brand_id>`, the brand as given. A campaign copies the brand it names
at creation, so a brand deleted or replaced later changes no campaign."""

from __future__ import annotations

import time
from typing import Any

from chalicelib.domain.errors import NotFound
from chalicelib.settings import get_settings
from chalicelib.store import aws, keys


def _table() -> str:
    return get_settings().main_table


def create_brand(account_id: str, definition: dict[str, Any]) -> dict[str, Any]:
    item = {**definition, "id": keys.new_id("brd"), "created_at": time.time()}
    aws.dynamodb().put_item(
        TableName=_table(),
        Item=aws.to_item({"pk": keys.brands_pk(account_id), "sk": item["id"], **item}),
        ConditionExpression="attribute_not_exists(pk)",
    )
    return item


def get_brand(account_id: str, brand_id: str) -> dict[str, Any]:
    found = aws.dynamodb().get_item(
        TableName=_table(), Key=aws.to_item({"pk": keys.brands_pk(account_id), "sk": brand_id}), ConsistentRead=True
    )
    if "Item" not in found:
        raise NotFound(detail=f"no brand {brand_id}")
    return {k: v for k, v in aws.from_item(found["Item"]).items() if k not in ("pk", "sk")}


def brands_page(account_id: str, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    return aws.partition_page(_table(), keys.brands_pk(account_id), after=after, limit=limit)


def delete_brand(account_id: str, brand_id: str) -> None:
    deleted = aws.write_if(
        aws.dynamodb().delete_item,
        TableName=_table(),
        Key=aws.to_item({"pk": keys.brands_pk(account_id), "sk": brand_id}),
        ConditionExpression="attribute_exists(pk)",
    )
    if deleted is None:
        raise NotFound(detail=f"no brand {brand_id}")
