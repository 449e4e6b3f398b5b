"""Counters from the deliveries stream: each batch's deltas applied once per campaign bucket, in one write
per campaign when no bucket of it was applied before; completion."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.delivery import (
    RECEIPT_PREFIX,
    DeliveryState,
    segment_counter,
    skip_counter,
    state_deltas,
    variant_counter,
)
from chalicelib.domain.responses import receipt_deltas
from chalicelib.operations.completion import complete_if_done
from chalicelib.store import campaigns, keys

ERASED = "erased_at"  # on the anonymised copy an erasure writes of a delivery (operations/erasure.py)


def apply_delivery_changes(event: dict[str, Any]) -> None:
    deltas: dict[tuple[str, int], dict[str, int]] = {}
    last_sequence: dict[tuple[str, int], str] = {}
    for record in event.get("Records", []):
        change = record["dynamodb"]
        if ERASED in change.get("NewImage", {}) or ERASED in change.get("OldImage", {}):
            continue  # an erasure's anonymised copy of a delivery (decision 42): counted already as the original
        bucket_key = keys.split_delivery_pk(change["Keys"]["pk"]["S"])
        old = change.get("OldImage", {}).get("state", {}).get("S")
        new = change.get("NewImage", {}).get("state", {}).get("S")
        if record.get("eventName") == "REMOVE":
            old = new = None  # retention (TTL) removing a finished delivery: what it counted stays counted
        summed = deltas.setdefault(bucket_key, {})
        for name, delta in state_deltas(old, new).items():
            summed[name] = summed.get(name, 0) + delta
        if new == DeliveryState.SKIPPED and old != new:  # skipped is final: counted once, by its reason
            reason = change.get("NewImage", {}).get("skip_reason", {}).get("S", "other")
            summed[skip_counter(reason)] = summed.get(skip_counter(reason), 0) + 1
        # Receipts (delivered, read, undelivered) beside the states: a delivery's receipt only moves forward;
        # and a recipient's first reply (decision 45; the others add to the timeline's replies, not here).
        # Both counted for the campaign, and for the variant and segment the delivery has.
        if record.get("eventName") != "REMOVE":
            new_image, old_image = change.get("NewImage", {}), change.get("OldImage", {})
            beside = receipt_deltas(old_image.get("receipt", {}).get("S"), new_image.get("receipt", {}).get("S"))
            if "reply_ids" in new_image and "reply_ids" not in old_image:
                beside["replied"] = 1
            groups = [
                (counter, new_image[attribute]["S"])
                for attribute, counter in (("variant", variant_counter), ("segment", segment_counter))
                if "S" in new_image.get(attribute, {})
            ]
            for name, delta in beside.items():
                summed[name] = summed.get(name, 0) + delta
                for counter, group in groups:
                    key = counter(group, name.removeprefix(RECEIPT_PREFIX))
                    summed[key] = summed.get(key, 0) + delta
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
        last_sequence[bucket_key] = change["SequenceNumber"]
    per_campaign: dict[str, dict[int, tuple[dict[str, int], str]]] = {}
    for (pk, bucket), summed in deltas.items():
        per_campaign.setdefault(pk, {})[bucket] = (summed, last_sequence[(pk, bucket)])
    for pk, batches in per_campaign.items():
        campaign = campaigns.apply_counter_deltas(pk, batches)
        if campaign is None and len(batches) > 1:  # some bucket was applied before (a replay): one by one
            for bucket, batch in batches.items():
                campaign = campaigns.apply_counter_deltas(pk, {bucket: batch}) or campaign
        if campaign is not None:
            complete_if_done(campaign)
