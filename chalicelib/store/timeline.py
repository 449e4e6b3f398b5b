"""A campaign's counts per minute (decision 41): `<account>#C#<campaign>` / `STAT#<minute epoch s, 12
digits>`, one item per minute that had events. A stream batch's counts are ADDed in one write per minute,
guarded like the campaign's counters (decision 3): `seq_<bucket>` holds the last stream sequence applied
for each deliveries bucket, and a batch adds only when its last sequence is past it in every bucket it
covers, so a batch delivered again adds nothing.
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


def add(campaign_pk: str, minute: int, batches: dict[int, tuple[dict[str, int], str]]) -> bool:
    """Add one stream batch's counts to a minute, from some buckets (bucket -> (counts, the batch's last
    sequence in it)), in one write guarded by every bucket's sequence; False when any of them was applied
    before (the caller then adds the buckets one by one, as the campaign's counters do)."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {":purge": int(time.time() + (get_settings().delivery_retention_days + 30) * 86_400)}
    sets, conditions = ["purge_at = :purge"], []
    totals: dict[str, int] = {}
    for i, (bucket, (counts, last_sequence)) in enumerate(sorted(batches.items())):
        names[f"#g{i}"] = f"{GUARD}{bucket}"
        values[f":s{i}"] = last_sequence.zfill(40)
        sets.append(f"#g{i} = :s{i}")
        conditions.append(f"(attribute_not_exists(#g{i}) OR #g{i} < :s{i})")
        for name, delta in counts.items():
            totals[name] = totals.get(name, 0) + delta
    adds = []
    for i, (name, delta) in enumerate(sorted(totals.items())):
        names[f"#c{i}"] = name
        values[f":c{i}"] = delta
        adds.append(f"#c{i} :c{i}")
    written = aws.write_if(
        aws.dynamodb().update_item,
        TableName=get_settings().main_table,
        Key=aws.to_item({"pk": campaign_pk, "sk": minute_sk(minute)}),
        UpdateExpression=f"ADD {', '.join(adds)} SET {', '.join(sets)}",
        ConditionExpression=" AND ".join(conditions),
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
