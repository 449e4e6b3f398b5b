"""Recipients waiting for their send window, held by the release in groups (decision 27).

A group is one item beside the campaign's META: `sk = WAIT#<opening ms>#<n>`, holding the released
bodies of up to `GROUP_SIZE` recipients whose window opens at the same instant (one zone, or one set of
zones). The release reads a group only once its opening has come, so a closed zone's recipients cost a
tick nothing, and releasing a group reads one item for all of its recipients.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from chalicelib.settings import get_settings
from chalicelib.store import aws

PREFIX = "WAIT#"
# Recipients per group item, and the encoded size it stays under (DynamoDB's item limit is 400 KB).
GROUP_SIZE = 500
GROUP_BYTES = 300_000


def sk_for(opening: float, tag: str) -> str:
    """A group's key: its opening (a window that never opens is never held: dispatch fails those)."""
    return f"{PREFIX}{int(opening * 1000):016d}#{tag}"


def opening_of(sk: str) -> float:
    return int(sk.removeprefix(PREFIX).split("#", 1)[0]) / 1000


def groups_for(bodies: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The bodies cut into groups that each fit one item."""
    groups: list[list[dict[str, Any]]] = []
    size = 0
    for body in bodies:
        length = len(json.dumps(body, separators=(",", ":"), default=str))
        if not groups or len(groups[-1]) >= GROUP_SIZE or size + length > GROUP_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(body)
        size += length
    return groups


def put_group(campaign_pk: str, opening: float, bodies: list[dict[str, Any]], sk: str | None = None) -> str:
    """Store one group (a new one, or `sk` rewritten with what is left of it); returns its sk."""
    sk = sk or sk_for(opening, secrets.token_hex(6))
    # A group its campaign never comes back to (cancelled, expired, deleted) goes with the table's TTL,
    # the deliveries' retention after its opening.
    kept = get_settings().delivery_retention_days * 86_400
    purge = int(opening + kept)
    aws.dynamodb().put_item(
        TableName=get_settings().main_table,
        Item=aws.to_item({"pk": campaign_pk, "sk": sk, "recipients": bodies, "purge_at": purge}),
    )
    return sk


def delete_group(campaign_pk: str, sk: str) -> None:
    aws.dynamodb().delete_item(TableName=get_settings().main_table, Key=aws.to_item({"pk": campaign_pk, "sk": sk}))


def due_groups(campaign_pk: str, now: float, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` groups whose window has opened by `now`, the earliest first."""
    answer = aws.dynamodb().query(
        TableName=get_settings().main_table,
        KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",
        ExpressionAttributeValues=aws.to_values({":pk": campaign_pk, ":first": PREFIX, ":last": sk_for(now, "~")}),
        ConsistentRead=True,
        Limit=limit,
    )
    return [aws.from_item(item) for item in answer.get("Items", [])]


def next_opening(campaign_pk: str) -> float | None:
    """When the earliest group still waiting opens (None: no group waits)."""
    answer = aws.dynamodb().query(
        TableName=get_settings().main_table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues=aws.to_values({":pk": campaign_pk, ":prefix": PREFIX}),
        ProjectionExpression="sk",
        ConsistentRead=True,
        Limit=1,
    )
    items = answer.get("Items", [])
    return opening_of(items[0]["sk"]["S"]) if items else None
