"""A/B variants: each recipient of a campaign gets one variant (or is held out), the same one every time.

Assignment hashes the campaign id and the recipient id (BLAKE2b) into 10,000 slots: the first
`holdout_percent` of them hold the recipient out, the rest are split by the variants' weights in their
order. It needs no stored state, so a retry, a failover or a redelivered chunk lands on the same variant.
"""

from __future__ import annotations

import hashlib
from typing import Any

SLOTS = 10_000
HELD_OUT = "held_out"


def slot(campaign_id: str, recipient_id: str) -> int:
    digest = hashlib.blake2b(f"{campaign_id}\x00{recipient_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % SLOTS


def assign(
    campaign_id: str, recipient_id: str, variants: list[dict[str, Any]], holdout_percent: float
) -> dict[str, Any] | str | None:
    """The recipient's variant (its definition), HELD_OUT, or None when the campaign has no variants."""
    position = slot(campaign_id, recipient_id)
    held = round(holdout_percent * SLOTS / 100)
    if position < held:
        return HELD_OUT
    if not variants:
        return None
    position -= held
    room = SLOTS - held
    total = sum(int(v["weight"]) for v in variants)
    edge = 0.0
    for variant in variants:
        edge += room * int(variant["weight"]) / total
        if position < edge:
            return variant
    return variants[-1]
