"""Signed callbacks seen: a token's id (`jti`) is kept until its token could no longer be taken anyway, so a
replayed callback is refused (`REPLAY#<jti>` in the main table, purged by TTL)."""

from __future__ import annotations

from chalicelib.settings import get_settings
from chalicelib.store import aws


def first_use(token_id: str, keep_until: float) -> bool:
    """Record the token's id; False when it was recorded before (a replay)."""
    written = aws.write_if(
        aws.dynamodb().put_item,
        TableName=get_settings().main_table,
        Item=aws.to_item({"pk": f"REPLAY#{token_id}", "sk": "-", "purge_at": int(keep_until) + 1}),
        ConditionExpression="attribute_not_exists(pk)",
    )
    return written is not None
