"""Counters from the deliveries stream: each batch's deltas applied once per campaign; completion."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.delivery import state_deltas
from chalicelib.operations.completion import complete_if_done
from chalicelib.store import campaigns


def apply_delivery_changes(event: dict[str, Any]) -> None:
    deltas: dict[str, dict[str, int]] = {}
    last_sequence: dict[str, str] = {}
    for record in event.get("Records", []):
        change = record["dynamodb"]
        pk = change["Keys"]["pk"]["S"]
        old = change.get("OldImage", {}).get("state", {}).get("S")
        new = change.get("NewImage", {}).get("state", {}).get("S")
        bucket = deltas.setdefault(pk, {})
        for name, delta in state_deltas(old, new).items():
            bucket[name] = bucket.get(name, 0) + delta
        last_sequence[pk] = change["SequenceNumber"]
    for pk, campaign_deltas in deltas.items():
        campaign = campaigns.apply_counter_deltas(
            pk, {k: v for k, v in campaign_deltas.items() if v}, last_sequence[pk]
        )
        if campaign is not None:
            complete_if_done(campaign)
