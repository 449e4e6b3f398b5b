"""Pacing ledgers: a send time taken by every chunk, so that every worker sending for a campaign, a
sender or a country keeps one pace between them (decision 23).

A ledger is one item holding `next_at`, the time its next send may go. A chunk of `count` sends at
`rate` takes the span [start, start + count / rate) and moves `next_at` to its end, with one conditional
UpdateItem in the usual cases:
- the ledger is idle (`next_at` at or before the chunk's earliest time): the span starts then;
- it is busy (`next_at` later): the span starts at `next_at` (an atomic add, its new value returned).
A race between the two is tried again. The campaign's ledger is a sibling of its META item; a sender's or
country's is the limit's own item (a limit deleted meanwhile paces nothing).
"""

from __future__ import annotations

import time
from typing import Any

from chalicelib.settings import get_settings
from chalicelib.store import aws

PACE = "PACE"
# A ledger idle this long after its last span is deleted by the table's TTL (`purge_at`).
IDLE_KEPT_SECONDS = 86_400
TRIES = 8


class Unpaced(Exception):
    """The ledger's limit is gone (deleted while the chunk was sent)."""


def take(pk: str, sk: str, *, count: int, rate: float, earliest: float, limit: bool = False) -> float:
    """Take a span of `count` sends at `rate` per second, starting no earlier than `earliest`; returns its
    start. With `limit`, the ledger is a configured limit's item and must exist (else `Unpaced`)."""
    span = count / rate
    table = get_settings().main_table
    key = aws.to_item({"pk": pk, "sk": sk})
    exists = "attribute_exists(rate_per_second) AND " if limit else ""
    for _ in range(TRIES):
        values = {":start": earliest, ":end": earliest + span}
        if not limit:  # a limit's item is the limit itself: never purged
            values[":purge"] = int(earliest + span + IDLE_KEPT_SECONDS)
        idle = aws.write_if(
            aws.dynamodb().update_item,
            TableName=table,
            Key=key,
            UpdateExpression="SET next_at = :end" + ("" if limit else ", purge_at = :purge"),
            ConditionExpression=f"{exists}(attribute_not_exists(next_at) OR next_at <= :start)",
            ExpressionAttributeValues=aws.to_values(values),
        )
        if idle is not None:
            return earliest
        busy = aws.write_if(
            aws.dynamodb().update_item,
            TableName=table,
            Key=key,
            UpdateExpression="SET next_at = next_at + :span",
            ConditionExpression=f"{exists}next_at > :start",
            ExpressionAttributeValues=aws.to_values({":start": earliest, ":span": span}),
            ReturnValues="UPDATED_NEW",
        )
        if busy is not None:
            return float(aws.from_item(busy["Attributes"])["next_at"]) - span
        if limit and not _exists(table, key):
            raise Unpaced(f"no limit at {pk} {sk}")
    raise RuntimeError(f"the pacing ledger {pk} {sk} stayed contended for {TRIES} tries")


def _exists(table: str, key: dict[str, Any]) -> bool:
    found = aws.dynamodb().get_item(TableName=table, Key=key, ProjectionExpression="rate_per_second")
    return "rate_per_second" in found.get("Item", {})


def campaign_span(campaign_pk: str, count: int, rate: float, earliest: float | None = None) -> float:
    """The start of a chunk's span on its campaign's ledger."""
    return take(campaign_pk, PACE, count=count, rate=rate, earliest=time.time() if earliest is None else earliest)


def hold_off(pk: str, until: float, sk: str = PACE) -> None:
    """Nothing more starts on the ledger before `until` (the provider throttled a send): its next span starts
    then at the earliest. Never moves a ledger back; one conditional UpdateItem."""
    aws.write_if(
        aws.dynamodb().update_item,
        TableName=get_settings().main_table,
        Key=aws.to_item({"pk": pk, "sk": sk}),
        UpdateExpression="SET next_at = :until, purge_at = :purge",
        ConditionExpression="attribute_not_exists(next_at) OR next_at < :until",
        ExpressionAttributeValues=aws.to_values({":until": until, ":purge": int(until + IDLE_KEPT_SECONDS)}),
    )
