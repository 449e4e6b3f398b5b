"""Recount: rebuild a campaign's counters from its deliveries and report the drift.

Counters come from the stream, which lags the table: a recount taken while deliveries still change
would count a change the stream applies again afterwards. So the recount is stored only when no
delivery changed for `recount_quiet_seconds` and no stream batch was applied while it counted;
otherwise it reports the drift without storing it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from chalicelib.domain.delivery import counter_names
from chalicelib.domain.errors import Conflict
from chalicelib.operations.completion import complete_if_done
from chalicelib.settings import get_settings
from chalicelib.store import campaigns, deliveries


@dataclass(frozen=True)
class RecountResult:
    before: dict[str, Any]
    after: dict[str, Any]
    drift: dict[str, int]
    applied: bool


def recount(campaign: dict[str, Any]) -> RecountResult:
    retention = get_settings().delivery_retention_days * 86_400
    if campaign.get("finished_at") and time.time() - float(campaign["finished_at"]) > retention:
        raise Conflict(
            detail="the campaign finished longer ago than the deliveries are kept "
            f"({get_settings().delivery_retention_days} days): its counters can no longer be rebuilt from them"
        )
    counted = deliveries.count_states(campaign["pk"], int(campaign.get("buckets", 1)))
    last_change = counted.pop("last_change", 0)
    names = list(dict.fromkeys([*counter_names(campaign), *counter_names(counted)]))
    after = {**campaign, **{name: int(counted.get(name, 0)) for name in names}}
    drift = {name: after[name] - int(campaign.get(name, 0)) for name in names if after[name] != campaign.get(name, 0)}
    if not drift:
        complete_if_done(campaign)
        return RecountResult(campaign, after, drift, applied=True)
    if time.time() - last_change < get_settings().recount_quiet_seconds:
        return RecountResult(campaign, after, drift, applied=False)
    updated = campaigns.set_counters(campaign["pk"], after, batches_seen=int(campaign.get("stream_batches", 0)))
    if updated is None:
        return RecountResult(campaign, after, drift, applied=False)
    complete_if_done(updated)
    return RecountResult(campaign, updated, drift, applied=True)
