"""The pacer: hands due recipients of running campaigns to dispatch, in chunks, at each campaign's rate.

Due retries (and recipients parked by a pause) go first, then new recipients read from the list with
a cursor kept on the campaign. Chunks are queued before the cursor moves: a crash in between
re-releases a chunk, which the dispatch claims turn into a no-op, instead of losing it.
"""

from __future__ import annotations

import time
from typing import Any

from chalicelib.domain.pacing import ReleasePlan, plan_release
from chalicelib.operations.completion import complete_if_done
from chalicelib.settings import get_settings
from chalicelib.store import campaigns, deliveries, keys, lists, queue

# A released retry is not handed out again for this long; if its chunk is lost it comes back then.
RETRY_LEASE_SECONDS = 900
# Longer than a release can take; a pacer that died holding it blocks the campaign this long at most.
RELEASE_LEASE_SECONDS = 120


def release_campaign(pk: str, *, now: float | None = None, horizon_seconds: float | None = None) -> int:
    now = time.time() if now is None else now
    horizon = get_settings().release_horizon_seconds if horizon_seconds is None else horizon_seconds
    campaign = campaigns.get_campaign_by_pk(pk)
    if campaign is None or campaign["status"] != "running":
        return 0
    # Completion is retried here too: when it lost a race with a pause or resume, no change is left to retry it.
    if complete_if_done(campaign) or _plan(campaign, now, horizon).quota == 0:
        return 0  # a read, not a write, on the ticks with nothing to do
    if campaign.get("release_exhausted") and not deliveries.due_deliveries(pk, now, 1):
        return 0  # the list is done and no retry is due: nothing to lease for
    campaign = campaigns.take_release_lease(pk, now, RELEASE_LEASE_SECONDS)
    if campaign is None:
        return 0
    rate = float(campaign["rate_per_second"])
    plan = _plan(campaign, now, horizon)
    entries = _due_entries(pk, now, plan.quota)
    cursor = campaign.get("release_cursor")
    exhausted = bool(campaign.get("release_exhausted", False))
    new_cursor = cursor
    account_id, _ = keys.split_campaign_pk(pk)
    while len(entries) < plan.quota and not exhausted:
        page, next_sk = lists.recipients_page(
            account_id,
            campaign["list_id"],
            after_sk=new_cursor,
            limit=plan.quota - len(entries),
            added_before_ms=int(campaign["started_at_ms"]),
        )
        entries.extend(
            {
                "phone": r["sk"].removeprefix(keys.RECIPIENT_PREFIX),
                "params": r.get("params", {}),
                "previous_attempt": 0,
                "fresh": True,
            }
            for r in page
        )
        if next_sk is None:
            exhausted = True
            if page:
                new_cursor = page[-1]["sk"]
        else:
            new_cursor = next_sk
    if entries:
        queue.send_chunks(_chunks(pk, plan, entries))
    campaigns.save_release_progress(
        pk,
        lease=float(campaign["release_lease"]),
        new_cursor=new_cursor,
        released_until=plan.released_until(len(entries), rate),
        exhausted=exhausted,
        fresh=sum(1 for e in entries if e["fresh"]),
    )
    return len(entries)


def _plan(campaign: dict[str, Any], now: float, horizon: float) -> ReleasePlan:
    return plan_release(
        now=now,
        released_until=float(campaign.get("released_until", 0)),
        rate_per_second=float(campaign["rate_per_second"]),
        horizon_seconds=horizon,
        max_chunk_size=get_settings().max_chunk_size,
    )


def _due_entries(pk: str, now: float, limit: int) -> list[dict[str, Any]]:
    entries = []
    for due in deliveries.due_deliveries(pk, now, limit):
        attempt = int(due["attempt"])
        if deliveries.lease_due(pk, due["sk"], attempt, now + RETRY_LEASE_SECONDS):
            entries.append(
                {"phone": due["sk"], "params": due.get("params", {}), "previous_attempt": attempt, "fresh": False}
            )
    return entries


def _chunks(pk: str, plan: ReleasePlan, entries: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    chunks = []
    start = 0
    for planned in plan.chunks:
        part = entries[start : start + planned.size]
        if not part:
            break
        chunks.append(({"campaign": pk, "recipients": part}, planned.delay_seconds))
        start += planned.size
    return chunks
