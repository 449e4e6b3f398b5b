"""Counters from the deliveries stream: each batch's deltas applied once per campaign; completion."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from chalicelib.domain.campaign import CampaignAction, CampaignStatus, next_status
from chalicelib.domain.delivery import state_deltas
from chalicelib.domain.errors import Conflict
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


def complete_if_done(campaign: dict[str, Any]) -> None:
    status = CampaignStatus(campaign["status"])
    if status not in (CampaignStatus.RUNNING, CampaignStatus.PAUSED):
        return
    finished = int(campaign["succeeded"]) + int(campaign["failed"])
    if int(campaign["in_flight"]) == 0 and finished >= int(campaign["total"]):
        # Paused, resumed or cancelled meanwhile: the next change decides.
        with suppress(Conflict):
            campaigns.change_status(campaign["pk"], status, next_status(CampaignAction.COMPLETE, status))
