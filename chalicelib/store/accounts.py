"""Accounts and their API keys (stored as SHA-256 hashes only)."""

from __future__ import annotations

import secrets
import time

from chalicelib.settings import get_settings
from chalicelib.store import aws, keys


def create_account(name: str) -> tuple[str, str]:
    """A new account and its first API key, returned once in clear."""
    account_id = keys.new_id("acc")
    api_key = f"bk_{secrets.token_urlsafe(24)}"
    table = get_settings().main_table
    now = time.time()
    aws.dynamodb().put_item(
        TableName=table,
        Item=aws.to_item({"pk": keys.account_pk(account_id), "sk": "ACCOUNT", "name": name, "created_at": now}),
    )
    aws.dynamodb().put_item(
        TableName=table,
        Item=aws.to_item({"pk": keys.api_key_pk(api_key), "sk": "KEY", "account_id": account_id, "created_at": now}),
        ConditionExpression="attribute_not_exists(pk)",
    )
    return account_id, api_key


def account_for_api_key(api_key: str) -> str | None:
    found = aws.dynamodb().get_item(
        TableName=get_settings().main_table,
        Key=aws.to_item({"pk": keys.api_key_pk(api_key), "sk": "KEY"}),
    )
    item = found.get("Item")
    return str(aws.from_item(item)["account_id"]) if item else None
