"""A campaign's counts per minute (decision 41): `<account>#C#<campaign>` / `STAT#<minute epoch s, 12
digits>`, one item per minute that had events. A stream batch's counts are ADDed in one write per minute,
guarded like the campaign's counters (decision 3): `seq_<bucket>` holds the last stream sequence applied
for each deliveries bucket, and each change of a batch is added once (store/stream_guard.py), so a batch
delivered again, however cut, adds nothing twice.
`GET /v1/campaigns/{id}/stats` rolls the minutes of a range up to hours or days."""

from __future__ import annotations

import time
from typing import Any

from chalicelib.settings import get_settings
from chalicelib.store import aws, stream_guard

PREFIX = "STAT#"
GUARD = "seq_"  # seq_<bucket>: the last stream sequence applied from that bucket


def minute_sk(minute: int) -> str:
    return f"{PREFIX}{minute:012d}"


def add(campaign_pk: str, minute: int, batches: dict[int, stream_guard.BucketChanges]) -> None:
    """Add one stream batch's counts to a minute (bucket -> its changes), each change once, in one write
    unless the batch replays changes added before (store/stream_guard.py)."""
    purge = int(time.time() + (get_settings().delivery_retention_days + 30) * 86_400)
    key = {"pk": campaign_pk, "sk": minute_sk(minute)}
    stream_guard.add_once(key, batches, lambda bucket: [f"{GUARD}{bucket}"], also_set={"purge_at": purge})


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
