"""The pacer: hands due recipients of a running campaign to dispatch, in chunks, at the campaign's rate.

Due retries (and recipients parked by a pause) go first, then new recipients read from the list with
a cursor kept on the campaign. Chunks are queued before the cursor moves: a crash in between
re-releases a chunk, which the dispatch claims turn into a no-op, instead of losing it. When only
part of the chunks could be queued, the progress of that part is kept.

Backpressure: released work that dispatch has not finished is bounded to `release_backlog_seconds` of
the campaign's rate (beyond the window being released), so a slow provider does not build a backlog.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.domain.delivery import FINISHED_COUNTERS
from chalicelib.domain.pacing import ReleasePlan, plan_release
from chalicelib.operations.completion import complete_if_done
from chalicelib.settings import get_settings
from chalicelib.store import campaigns, deliveries, keys, lists, queue

# A released retry is not handed out again for this long; if its chunk is lost (a release killed between
# the lease and the send) it comes back then. Were its chunk only late, the retry is released twice and
# the conditional claim (state queued, attempt) lets one of the two send it.
RETRY_LEASE_SECONDS = 120
# Longer than a release can take; a pacer that died holding it blocks the campaign this long at most.
RELEASE_LEASE_SECONDS = 120
# Recipients read from the list per Query page, between which the release checks its time.
RELEASE_PAGE = 1000
# Far enough ahead to find every waiting delivery, however late it is due.
EVER = 10 * 366 * 86_400
TOO_LARGE = "too_large: the recipient's data does not fit a queue message"
# A `continue` campaign's next pass waits for the chunks released before it to be claimed, at most this long.
PASS_WAIT_SECONDS = 300


@dataclass
class Entry:
    """One recipient released to dispatch, and where the list cursor stands once it is sent."""

    body: dict[str, Any]
    position: str | None  # the list position (fresh recipients only)

    @property
    def fresh(self) -> bool:
        return bool(self.body["fresh"])


def release_campaign(
    pk: str,
    *,
    now: float | None = None,
    horizon_seconds: float | None = None,
    lease_seconds: float | None = None,
    out_of_time: Callable[[], bool] = lambda: False,
) -> int:
    """Release the campaign's due recipients; `lease_seconds` is how long a pacer that dies holding the
    lease blocks the campaign (the invocation's remaining time, so no longer than it could run). The list
    is read RELEASE_PAGE recipients at a time while `out_of_time()` says there is time left: what was read
    is sent and the cursor saved, and the next job goes on from there."""
    now = time.time() if now is None else now
    horizon = get_settings().release_horizon_seconds if horizon_seconds is None else horizon_seconds
    campaign = campaigns.get_campaign_by_pk(pk)
    if campaign is None or campaign["status"] != "running":
        return 0
    # Completion is retried here too: when it lost a race with a pause or resume, no change is left to retry it.
    if complete_if_done(campaign):
        return 0
    if campaign.get("expires_at") and now >= float(campaign["expires_at"]):
        expire_campaign(campaign, now, lease_seconds or RELEASE_LEASE_SECONDS)
        return 0
    if _quota(campaign, now, horizon)[1] == 0:
        return 0  # a read, not a write, on the ticks with nothing to do
    if campaign.get("release_exhausted") and not int(campaign.get("waiting", 0)) and not _pass_due(campaign, now):
        return 0  # the list is done and no retry waits: nothing to lease for
    campaign = campaigns.take_release_lease(pk, now, lease_seconds or RELEASE_LEASE_SECONDS)
    if campaign is None:
        return 0
    if campaign.get("release_exhausted") and _pass_due(campaign, now):
        late_from = int(campaign["late_from"])
        if campaigns.begin_pass(pk, lease=float(campaign["release_lease"]), late_from=late_from):
            campaign = {**campaign, "pass_from": late_from, "release_exhausted": False, "release_cursor": None}
    plan, quota = _quota(campaign, now, horizon)
    entries = _due_entries(campaign, now, quota) if int(campaign.get("waiting", 0)) else []
    cursor = campaign.get("release_cursor")
    exhausted = bool(campaign.get("release_exhausted", False))
    while len(entries) < quota and not exhausted and not (entries and out_of_time()):
        page, cursor = _list_page(campaign, cursor, min(quota - len(entries), RELEASE_PAGE))
        entries.extend(
            Entry(
                {**lists.recipient_of(r).to_dict(), "previous_attempt": 0, "fresh": True},
                position,
            )
            for position, r in page
        )  # fmt: skip
        exhausted = cursor is None
    sent = _send(pk, campaign, plan, entries)
    done = entries[:sent]
    if sent < len(entries):  # keep what went out; the rest is released again from there
        exhausted = False
        positions = [e.position for e in done if e.fresh]
        cursor = positions[-1] if positions else campaign.get("release_cursor")
    fresh = sum(1 for e in done if e.fresh)
    first_pass_done = exhausted and "pass_from" not in campaign  # a later pass's recipients were counted when added
    campaigns.save_release_progress(
        pk,
        lease=float(campaign["release_lease"]),
        new_cursor=cursor,
        released_until=plan.released_until(len(done), float(campaign["rate_per_second"])),
        exhausted=exhausted,
        fresh=fresh,
        exact_total=int(campaign.get("released", 0)) + fresh if first_pass_done else None,
    )
    return len(done)


def _pass_due(campaign: dict[str, Any], now: float) -> bool:
    """Whether recipients were added to a `continue` campaign's list since its last pass began, and every
    recipient released before has its delivery (so the pass can tell the ones it already took), or the
    addition waited PASS_WAIT_SECONDS (released recipients counted twice, after a release that died between
    queueing its chunks and saving its cursor, would otherwise hold every pass back for good)."""
    if "late_from" not in campaign:
        return False
    return unclaimed(campaign) == 0 or now * 1000 - int(campaign["late_from"]) > PASS_WAIT_SECONDS * 1000


def _list_page(campaign: dict[str, Any], cursor: str | None, limit: int) -> tuple[list[tuple[str, Any]], str | None]:
    """The next page of the campaign's audience from the list. The first pass reads the list as it stood at
    the start; a later pass (a `continue` campaign's) reads the recipients added from its `pass_from` on and
    leaves out those that already have a delivery (added while the pass before was reading)."""
    account_id, _ = keys.split_campaign_pk(campaign["pk"])
    if "pass_from" not in campaign:
        return lists.recipients_page(
            account_id, campaign["list_id"], after=cursor, limit=limit, added_before_ms=int(campaign["started_at_ms"])
        )
    page, cursor = lists.recipients_page(
        account_id, campaign["list_id"], after=cursor, limit=limit, added_from_ms=int(campaign["pass_from"])
    )
    ids = [item["sk"].removeprefix(keys.RECIPIENT_PREFIX) for _, item in page]
    taken = {d["sk"] for d in deliveries.deliveries_of(campaign["pk"], int(campaign.get("buckets", 1)), ids)}
    return [(position, item) for (position, item), rid in zip(page, ids, strict=True) if rid not in taken], cursor


def expire_campaign(campaign: dict[str, Any], now: float, lease_seconds: float) -> int:
    """The campaign passed its `expires_at`: once, under the release lease, it stops releasing and counts
    the recipients it never released as expired; then every retry or parked recipient waiting, due or
    not, is expired (RELEASE_PAGE per call, the next tick goes on). Returns how many were expired here;
    the campaign ends `expired` when the stream has counted them (completion)."""
    pk = campaign["pk"]
    if "expired_unreleased" not in campaign:
        leased = campaigns.take_release_lease(pk, now, lease_seconds)
        if leased is None:
            return 0
        unreleased = max(0, int(leased.get("total", 0)) - int(leased.get("released", 0)))
        if leased.get("release_exhausted"):
            unreleased = 0
        marked = campaigns.mark_expired(pk, lease=float(leased["release_lease"]), unreleased=unreleased)
        if marked is None:
            return 0
        campaign = marked
    expired = 0
    if not int(campaign.get("waiting", 0)):
        return expired
    for bucket in range(int(campaign.get("buckets", 1))):
        target = keys.delivery_pk(pk, bucket)
        for waiting in deliveries.due_deliveries(target, now + EVER, RELEASE_PAGE - expired):
            expired += deliveries.expire_queued(target, waiting["sk"], int(waiting["attempt"])).ok
        if expired >= RELEASE_PAGE:
            break
    return expired


def _quota(campaign: dict[str, Any], now: float, horizon: float) -> tuple[ReleasePlan, int]:
    """The window's plan, and how many recipients it may release under backpressure."""
    settings = get_settings()
    rate = float(campaign["rate_per_second"])
    plan = plan_release(
        now=now,
        released_until=float(campaign.get("released_until", 0)),
        rate_per_second=rate,
        horizon_seconds=horizon,
        max_chunk_size=settings.max_chunk_size,
    )
    limit = max(settings.max_chunk_size, math.ceil(rate * (horizon + settings.release_backlog_seconds)))
    return plan, max(0, min(plan.quota, limit - outstanding(campaign)))


def outstanding(campaign: dict[str, Any]) -> int:
    """Released and not finished: fresh recipients not yet claimed, plus every send in flight."""
    return unclaimed(campaign) + int(campaign.get("in_flight", 0))


def unclaimed(campaign: dict[str, Any]) -> int:
    """Fresh recipients released whose delivery the counters do not show yet (queued, or being claimed)."""
    rows = sum(int(campaign.get(c, 0)) for c in ("waiting", "in_flight", *FINISHED_COUNTERS))
    return max(0, int(campaign.get("released", 0)) - rows)


def _due_entries(campaign: dict[str, Any], now: float, limit: int) -> list[Entry]:
    entries: list[Entry] = []
    for bucket in range(int(campaign.get("buckets", 1))):
        if len(entries) >= limit:
            break
        pk = keys.delivery_pk(campaign["pk"], bucket)
        for due in deliveries.due_deliveries(pk, now, limit - len(entries)):
            attempt = int(due["attempt"])
            if deliveries.lease_due(pk, due["sk"], attempt, now + RETRY_LEASE_SECONDS):
                body = {**due.get("recipient", {}), "id": due["sk"], "previous_attempt": attempt, "fresh": False}
                if "next_destination_index" in due:  # a retry or a failover: where the next try goes
                    body["destination_index"] = int(due["next_destination_index"])
                    body["destination_try"] = int(due["next_try"])
                entries.append(Entry(body, None))
    return entries


def _send(pk: str, campaign: dict[str, Any], plan: ReleasePlan, entries: list[Entry]) -> int:
    """Queue the entries in the plan's chunks (split further where a chunk is too large for one message);
    returns how many entries, from the first, went out (or were failed as too large)."""
    messages: list[tuple[str, int]] = []
    covers: list[int] = []  # entries each message settles, a too-large recipient counted with the next
    carried = start = 0
    for planned in plan.chunks:
        part = entries[start : start + planned.size]
        if not part:
            break
        for body, count in _messages(pk, campaign, part):
            if body is None:
                carried += count
                continue
            messages.append((body, planned.delay_seconds))
            covers.append(count + carried)
            carried = 0
        start += len(part)
    try:
        queue.send_chunks_encoded(messages)
    except queue.QueueSendError as exc:
        return sum(covers[: exc.sent])
    return start


def _messages(pk: str, campaign: dict[str, Any], part: list[Entry]) -> list[tuple[str | None, int]]:
    """(encoded body, entries it covers) for one planned chunk, halved until each fits SQS's limit; a body
    of None stands for a recipient too large for any message, failed here rather than blocking the list."""
    body = queue.encode({"campaign": pk, "claim": secrets.token_hex(8), "recipients": [e.body for e in part]})
    if queue.fits(body):
        return [(body, len(part))]
    if len(part) == 1:
        recipient = part[0].body
        rid = recipient["id"]
        target = deliveries.pk_for(pk, int(campaign.get("buckets", 1)), rid)
        if recipient["fresh"]:
            deliveries.fail_unsent(target, rid, TOO_LARGE)
        else:
            deliveries.fail_queued(target, rid, int(recipient["previous_attempt"]), TOO_LARGE)
        return [(None, 1)]
    half = len(part) // 2
    return _messages(pk, campaign, part[:half]) + _messages(pk, campaign, part[half:])
