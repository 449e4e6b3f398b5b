"""Counters from the deliveries stream: each batch's deltas applied once per campaign bucket; completion."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.delivery import state_deltas
from chalicelib.operations.completion import complete_if_done
from chalicelib.store import campaigns, keys


def apply_delivery_changes(event: dict[str, Any]) -> None:
    deltas: dict[tuple[str, int], dict[str, int]] = {}
    last_sequence: dict[tuple[str, int], str] = {}
    for record in event.get("Records", []):
        change = record["dynamodb"]
        bucket_key = keys.split_delivery_pk(change["Keys"]["pk"]["S"])
        old = change.get("OldImage", {}).get("state", {}).get("S")
        new = change.get("NewImage", {}).get("state", {}).get("S")
        summed = deltas.setdefault(bucket_key, {})
        for name, delta in state_deltas(old, new).items():
            summed[name] = summed.get(name, 0) + delta
        last_sequence[bucket_key] = change["SequenceNumber"]
    updated: dict[str, dict[str, Any]] = {}
    for (pk, bucket), bucket_deltas in deltas.items():
        campaign = campaigns.apply_counter_deltas(
            pk, bucket, {k: v for k, v in bucket_deltas.items() if v}, last_sequence[(pk, bucket)]
        )
        if campaign is not None:
            updated[pk] = campaign
    for campaign in updated.values():
        complete_if_done(campaign)
