"""Counters from the deliveries stream: each change counted once (a bucket's guard keeps the last sequence
number counted), in one write per campaign and batch unless the batch replays changes counted before;
completion."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.delivery import (
    ENGAGED_FIELDS,
    ENGAGEMENT_PREFIX,
    RECEIPT_PREFIX,
    DeliveryState,
    engagement_deltas,
    segment_counter,
    skip_counter,
    state_deltas,
    variant_counter,
)
from chalicelib.domain.responses import RECEIPTS_WAITING, receipt_deltas
from chalicelib.operations.completion import complete_if_done
from chalicelib.store import campaigns, keys, stream_guard
from chalicelib.store.deliveries import RECEIPT_DUE

ERASED = "erased_at"  # on the anonymised copy an erasure writes of a delivery (operations/erasure.py)


def apply_delivery_changes(event: dict[str, Any]) -> None:
    changes: dict[tuple[str, int], stream_guard.BucketChanges] = {}
    for record in event.get("Records", []):
        change = record["dynamodb"]
        if ERASED in change.get("NewImage", {}) or ERASED in change.get("OldImage", {}):
            continue  # an erasure's anonymised copy of a delivery (decision 42): counted already as the original
        bucket_key = keys.split_delivery_pk(change["Keys"]["pk"]["S"])
        old = change.get("OldImage", {}).get("state", {}).get("S")
        new = change.get("NewImage", {}).get("state", {}).get("S")
        if record.get("eventName") == "REMOVE":
            old = new = None  # retention (TTL) removing a finished delivery: what it counted stays counted
        summed: dict[str, int] = {}
        for name, delta in state_deltas(old, new).items():
            summed[name] = summed.get(name, 0) + delta
        if new == DeliveryState.SKIPPED and old != new:  # skipped is final: counted once, by its reason
            reason = change.get("NewImage", {}).get("skip_reason", {}).get("S", "other")
            summed[skip_counter(reason)] = summed.get(skip_counter(reason), 0) + 1
        # Beside the states, counted for the campaign and for the variant and segment the delivery has:
        # receipts (delivered, read, undelivered; a delivery's receipt only moves forward), and engagement
        # (decisions 43, 45: clicks on tracked links, conversions, a recipient's first reply). `grouped` holds
        # each under the name a variant's or segment's counter takes.
        grouped: dict[str, int] = {}
        if record.get("eventName") != "REMOVE":
            receipts = receipt_deltas(
                change.get("OldImage", {}).get("receipt", {}).get("S"),
                change.get("NewImage", {}).get("receipt", {}).get("S"),
            )
            beside = {name.removeprefix(RECEIPT_PREFIX): (name, delta) for name, delta in receipts.items()}
            beside |= {name: (ENGAGEMENT_PREFIX + name, delta) for name, delta in _engagement(change).items()}
            for short, (name, delta) in beside.items():
                summed[name] = summed.get(name, 0) + delta
                grouped[short] = delta
            # A delivery waiting for its receipt before a fallback (decision 48): the campaign's count only.
            waits = int(RECEIPT_DUE in change.get("NewImage", {})) - int(RECEIPT_DUE in change.get("OldImage", {}))
            if waits:
                summed[RECEIPTS_WAITING] = summed.get(RECEIPTS_WAITING, 0) + waits
        # An A/B variant's own counters, beside the campaign's: each side counted under the variant its image
        # has (a recipient parked before its claim gets its variant with the claim).
        # A segment's the same way.
        for attribute, counter in (("variant", variant_counter), ("segment", segment_counter)):
            old_group = change.get("OldImage", {}).get(attribute, {}).get("S")
            new_group = change.get("NewImage", {}).get(attribute, {}).get("S")
            for group, side in ((old_group, state_deltas(old, None)), (new_group, state_deltas(None, new))):
                if group:
                    for name, delta in side.items():
                        key = counter(group, name)
                        summed[key] = summed.get(key, 0) + delta
            if new_group:
                for name, delta in grouped.items():
                    summed[counter(new_group, name)] = summed.get(counter(new_group, name), 0) + delta
        changes.setdefault(bucket_key, []).append((change["SequenceNumber"], summed))
    per_campaign: dict[str, dict[int, stream_guard.BucketChanges]] = {}
    for (pk, bucket), bucket_changes in changes.items():
        per_campaign.setdefault(pk, {})[bucket] = bucket_changes
    for pk, batches in per_campaign.items():
        campaign = campaigns.apply_counter_deltas(pk, batches)
        if campaign is not None:
            complete_if_done(campaign)


def _engagement(change: dict[str, Any]) -> dict[str, int]:
    """A stream record's change of `clicks`, `conversions` and replies (`last_reply_at`), as counter deltas."""

    def numbers(image: dict[str, Any]) -> dict[str, int]:
        return {name: int(float(image.get(name, {}).get("N", 0))) for name in ENGAGED_FIELDS}

    return engagement_deltas(numbers(change.get("OldImage", {})), numbers(change.get("NewImage", {})))
