"""A campaign's counts per minute (decision 41): `<account>#C#<campaign>` / `STAT#<minute epoch s, 12
digits>`, one item per minute that had events. Counts are ADDed per deliveries bucket, guarded like the
campaign's counters (decision 3): `seq_<bucket>` holds the last stream sequence applied for that bucket, and
a batch adds only when its last sequence is past it, so a batch delivered again adds nothing.
`GET /v1/campaigns/{id}/stats` rolls the minutes of a range up to hours or days."""

from __future__ import annotations

import time
from typing import Any

from chalicelib.settings import get_settings
from chalicelib.store import aws

PREFIX = "STAT#"
GUARD = "seq_"  # seq_<bucket>: the last stream sequence applied from that bucket


def minute_sk(minute: int) -> str:
    return f"{PREFIX}{minute:012d}"


def add(campaign_pk: str, minute: int, bucket: int, counts: dict[str, int], last_sequence: str) -> bool:
    """Add one batch's counts from one bucket to a minute; False when that batch was applied before."""
    names = {f"#c{i}": name for i, name in enumerate(counts)}
    names["#guard"] = f"{GUARD}{bucket}"
    values: dict[str, Any] = {f":c{i}": delta for i, delta in enumerate(counts.values())}
    values[":s"] = last_sequence.zfill(40)
    values[":purge"] = int(time.time() + (get_settings().delivery_retention_days + 30) * 86_400)
    adds = ", ".join(f"#c{i} :c{i}" for i in range(len(counts)))
    written = aws.write_if(
        aws.dynamodb().update_item,
        TableName=get_settings().main_table,
        Key=aws.to_item({"pk": campaign_pk, "sk": minute_sk(minute)}),
        UpdateExpression=f"ADD {adds} SET #guard = :s, purge_at = :purge",
        ConditionExpression="attribute_not_exists(#guard) OR #guard < :s",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=aws.to_values(values),
    )
    return written is not None


def minutes(campaign_pk: str, since: int, until: int) -> list[dict[str, Any]]:
    """The campaign's minute items from `since` to `until` (epoch s), oldest first."""
    params = {
        "TableName": get_settings().main_table,
        "KeyConditionExpression": "pk = :pk AND sk BETWEEN :a AND :b",
        "ExpressionAttributeValues": aws.to_values(
            {":pk": campaign_pk, ":a": minute_sk(since // 60 * 60), ":b": minute_sk(until // 60 * 60)}
        ),
        "ConsistentRead": True,
    }
    return [aws.from_item(item) for item in aws.query_all(params)]
