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
from datetime import UTC, datetime
from typing import Any

from chalicelib.domain import segments
from chalicelib.domain.delivery import FINISHED_COUNTERS, DeliveryState
from chalicelib.domain.pacing import ReleasePlan, paced_rate, plan_release
from chalicelib.domain.recipients import Recipient
from chalicelib.domain.responses import RECEIPTS_WAITING
from chalicelib.domain.windows import Openings
from chalicelib.operations import calls, receipt_waits
from chalicelib.operations.completion import complete_if_done
from chalicelib.settings import get_settings
from chalicelib.store import campaigns, deliveries, keys, lists, queue, window_waits

# A released retry is not handed out again for this long: its lease is written once its chunk is queued, so
# a release killed before the send loses nothing (the retry is still due), and one killed between the send
# and the lease releases it again at the next tick. Were its chunk only late, the retry is released twice and
# the conditional claim (state queued, attempt) lets one of the two send it.
RETRY_LEASE_SECONDS = 120
# A retry's chunk waits behind what was released before it: the lease grows to twice that wait (at the pace
# dispatch has kept), up to this long (retry_lease_seconds).
MAX_RETRY_LEASE_SECONDS = 900
# Longer than a release can take; a pacer that died holding it blocks the campaign this long at most.
RELEASE_LEASE_SECONDS = 120
# Recipients read from the list per Query page, between which the release checks its time.
RELEASE_PAGE = 1000
# Far enough ahead to find every waiting delivery, however late it is due.
EVER = 10 * 366 * 86_400
TOO_LARGE = "too_large: the recipient's data does not fit a queue message"
# Deliveries in flight read from the due index per bucket and tick (calls and receipt waits past their deadline).
SWEEP_PAGE = 100
# A `continue` campaign's next pass waits for the chunks released before it to be claimed, at most this long.
PASS_WAIT_SECONDS = 300


@dataclass
class Entry:
    """One recipient released to dispatch, and where the list cursor stands once it is sent."""

    body: dict[str, Any]
    position: str | None  # the list position (fresh recipients only)
    # A queued delivery's due time as the due index showed it (released retries and parked recipients only).
    due_at: float | None = None
    # Whether it is its recipient's last entry: an `every` campaign releases one per matching segment (decision
    # 49), and the list cursor moves past a recipient only once all of them are queued.
    last: bool = True

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
    calling = campaign.get("channel") == "voice" or any(
        g.get("channel") == "voice" for g in campaign.get("segments") or []
    )
    if (calling or receipt_waits.used_by(campaign)) and int(campaign.get("in_flight", 0)):
        sweep(campaign, now)  # calls whose events never came, sends whose receipt did not, past their deadline
    if _quota(campaign, now, horizon)[1] == 0:
        return 0  # a read, not a write, on the ticks with nothing to do
    idle = not int(campaign.get("waiting", 0)) and not _pass_due(campaign, now) and not _groups_due(campaign, now)
    if campaign.get("release_exhausted") and idle:
        return 0  # the list is done, and no retry, window group or pass waits: nothing to lease for
    campaign = campaigns.take_release_lease(pk, now, lease_seconds or RELEASE_LEASE_SECONDS)
    if campaign is None:
        return 0
    if campaign.get("release_exhausted") and _pass_due(campaign, now):
        late_from = int(campaign["late_from"])
        if campaigns.begin_pass(pk, lease=float(campaign["release_lease"]), late_from=late_from):
            campaign = {**campaign, "pass_from": late_from, "release_exhausted": False, "release_cursor": None}
    plan, quota = _quota(campaign, now, horizon)
    entries = _due_entries(campaign, now, quota) if int(campaign.get("waiting", 0)) else []
    held = Held(campaign, now)
    if _groups_due(campaign, now):
        entries.extend(held.take_due(quota - len(entries)))
    cursor = campaign.get("release_cursor")
    exhausted = bool(campaign.get("release_exhausted", False))
    while len(entries) < quota and not exhausted and not ((entries or held.new) and out_of_time()):
        page, cursor = _list_page(campaign, cursor, min(quota - len(entries), RELEASE_PAGE))
        for position, item in page:
            recipient = lists.recipient_of(item)
            for entry in _fresh_entries(campaign, recipient, position, now):
                if not held.holds(entry, recipient, read_after=len(entries)):
                    entries.append(entry)
        exhausted = cursor is None
    sent = _whole(entries, _send(pk, campaign, plan, entries))
    done = entries[:sent]
    _lease_due(campaign, done, now)
    if sent < len(entries):  # keep what went out; the rest is released again from there
        exhausted = False
        positions = [e.position for e in done if e.fresh and e.position is not None]
        cursor = positions[-1] if positions else campaign.get("release_cursor")
    windowed = held.store(entries, sent)
    fresh = sum(1 for e in done if e.fresh)
    first_pass_done = exhausted and "pass_from" not in campaign  # a later pass's recipients were counted when added
    campaigns.save_release_progress(
        pk,
        lease=float(campaign["release_lease"]),
        new_cursor=cursor,
        released_until=plan.released_until(len(done), paced_rate(float(campaign["rate_per_second"]))),
        exhausted=exhausted,
        fresh=fresh,
        exact_total=int(campaign.get("released", 0)) + fresh + windowed if first_pass_done else None,
        windowed=held.change,
        window_next=held.next_opening() if held.changed else None,
    )
    return len(done)


def sweep(campaign: dict[str, Any], now: float) -> int:
    """Deliveries in flight past their deadline on the due index (a Query per bucket, reading only what is
    due): a call no event ended is `unknown` (decision 38); a send no delivered receipt came for goes to the
    campaign's fallback (decision 48). Returns how many were moved."""
    swept = 0
    for bucket in range(int(campaign.get("buckets", 1))):
        pk = keys.delivery_pk(campaign["pk"], bucket)
        for due in deliveries.due_deliveries(pk, now, SWEEP_PAGE):
            if due.get("state") != DeliveryState.IN_FLIGHT:
                continue  # a retry due: released below
            if "call_uuid" in due:
                swept += calls.sweep_one(campaign, pk, due, now)
            elif deliveries.RECEIPT_DUE in due:
                swept += receipt_waits.sweep_one(campaign, due, now)
    return swept


def _fresh_entries(campaign: dict[str, Any], recipient: Recipient, position: str, now: float) -> list[Entry]:
    """A recipient read from the list, as released: one entry; in an `every` campaign one per segment it
    matches (or one for none), each keyed `<id>/<slot>` and carrying its slot (decision 49)."""
    body = {**recipient.to_dict(), "previous_attempt": 0, "fresh": True}
    if not segments.is_every(campaign):
        return [Entry(body, position)]
    slots = segments.slots_of(campaign, recipient, datetime.fromtimestamp(now, UTC))
    return [
        Entry(
            {**body, "id": segments.delivery_key(recipient.id, slot), "slot": slot}, position, last=i == len(slots) - 1
        )
        for i, slot in enumerate(slots)
    ]


def _whole(entries: list[Entry], sent: int) -> int:
    """How many entries from the first count as released: `sent`, less the first messages of a recipient whose
    last one was not queued (released again with it next time; their claims make the copies send nothing)."""
    while sent and not entries[sent - 1].last:
        sent -= 1
    return sent


def _groups_due(campaign: dict[str, Any], now: float) -> bool:
    """Whether a group of recipients held for their window has opened (decision 27)."""
    return int(campaign.get("windowed", 0)) > 0 and float(campaign.get("window_next", 0)) <= now


class Held:
    """Recipients the release holds back for their send window, in groups by the instant it opens
    (decision 27): one written item per group of up to 500, read once when it opens, instead of a parked
    delivery written (and its index entry) for each. Dispatch checks the window again at the send."""

    def __init__(self, campaign: dict[str, Any], now: float) -> None:
        self.pk = campaign["pk"]
        self.channel = campaign["channel"]
        self.now = now
        self.at = datetime.fromtimestamp(now, UTC)
        self.openings = Openings.of(campaign)
        self.new: dict[float, list[tuple[int, dict[str, Any]]]] = {}  # opening: (entries read before, body)
        self.taken: list[tuple[dict[str, Any], int, int, list[dict[str, Any]]]] = []  # group, first, end, left
        self.before = int(campaign.get("windowed", 0))
        self.change = 0  # windowed recipients added, less those that left their groups
        self.changed = False

    def opening(self, recipient: Recipient) -> float | None:
        route = recipient.destination_for(self.channel)
        if route is None or self.openings.window is None:
            return None
        opening = self.openings.wait(recipient, route[1].address, self.at)
        return None if opening is None or math.isinf(opening) else opening  # never: dispatch fails it

    def holds(self, entry: Entry, recipient: Recipient, read_after: int) -> bool:
        """Hold a fresh recipient read from the list whose window is closed now."""
        opening = self.opening(recipient)
        if opening is None:
            return False
        self.new.setdefault(opening, []).append((read_after, entry.body))
        return True

    def take_due(self, limit: int) -> list[Entry]:
        """Up to `limit` recipients of the groups that have opened; one closed again (the window was changed
        since) is held anew."""
        entries: list[Entry] = []
        if limit <= 0:
            return entries
        for group in window_waits.due_groups(self.pk, self.now, max(1, limit // window_waits.GROUP_SIZE + 1)):
            if len(entries) >= limit:
                break
            bodies = group["recipients"]
            room = limit - len(entries)
            first = len(entries)
            for body in bodies[:room]:
                if not self.holds(Entry(body, None), Recipient.from_dict(body), read_after=-1):
                    entries.append(Entry(body, None))
            self.taken.append((group, first, len(entries), bodies[room:]))
        return entries

    def store(self, entries: list[Entry], sent: int) -> int:
        """After the send: write the new groups and what is left of the taken ones (the recipients read
        after the last one sent are read again next time); returns the recipients windowed after it."""
        complete = sent == len(entries)
        for opening, held in self.new.items():
            kept = [body for after, body in held if complete or after < sent]
            for bodies in window_waits.groups_for(kept):
                window_waits.put_group(self.pk, opening, bodies)
                self.change += len(bodies)
                self.changed = True
        for group, first, end, left in self.taken:
            unsent = [e.body for e in entries[max(first, sent) : end]] + left
            self.change -= len(group["recipients"]) - len(unsent)
            self.changed = True
            if unsent:
                window_waits.put_group(self.pk, window_waits.opening_of(group["sk"]), unsent, sk=group["sk"])
            else:
                window_waits.delete_group(self.pk, group["sk"])
        return self.before + self.change

    def next_opening(self) -> float | None:
        return window_waits.next_opening(self.pk)


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
    if segments.is_every(campaign):  # its messages' keys (decision 49): taken when any of them has a delivery
        at = datetime.now(UTC)
        wanted = {
            rid: [
                segments.delivery_key(rid, slot) for slot in segments.slots_of(campaign, lists.recipient_of(item), at)
            ]
            for (_, item), rid in zip(page, ids, strict=True)
        }
    else:
        wanted = {rid: [rid] for rid in ids}
    keyed = [key for some in wanted.values() for key in some]
    taken = {d["sk"] for d in deliveries.deliveries_of(campaign["pk"], int(campaign.get("buckets", 1)), keyed)}
    return [
        (position, item) for (position, item), rid in zip(page, ids, strict=True) if not taken.intersection(wanted[rid])
    ], cursor


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
        if leased.get("release_exhausted"):  # the list is read: only those held for their window are left
            unreleased = int(leased.get("windowed", 0))
        marked = campaigns.mark_expired(pk, lease=float(leased["release_lease"]), unreleased=unreleased)
        if marked is None:
            return 0
        campaign = marked
    expired = 0
    if not int(campaign.get("waiting", 0)) and not int(campaign.get(RECEIPTS_WAITING, 0)):
        return expired
    for bucket in range(int(campaign.get("buckets", 1))):
        target = keys.delivery_pk(pk, bucket)
        for waiting in deliveries.due_deliveries(target, now + EVER, RELEASE_PAGE - expired):
            if deliveries.RECEIPT_DUE in waiting:  # sent, waiting for its receipt: the send stands, no fallback
                expired += receipt_waits.settle(target, waiting)
                continue
            expired += deliveries.expire_queued(target, waiting["sk"], int(waiting["attempt"])).ok
        if expired >= RELEASE_PAGE:
            break
    return expired


def _quota(campaign: dict[str, Any], now: float, horizon: float) -> tuple[ReleasePlan, int]:
    """The window's plan, and how many recipients it may release under backpressure."""
    settings = get_settings()
    rate = paced_rate(float(campaign["rate_per_second"]))
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
    """Released and not finished: fresh recipients not yet claimed, plus every send in flight (not those sent
    and waiting for their receipt: minutes of them would hold the pace back for nothing; decision 48)."""
    waiting = max(0, int(campaign.get(RECEIPTS_WAITING, 0)))
    return unclaimed(campaign) + max(0, int(campaign.get("in_flight", 0)) - waiting)


def unclaimed(campaign: dict[str, Any]) -> int:
    """Fresh recipients released whose delivery the counters do not show yet (queued, or being claimed)."""
    rows = sum(int(campaign.get(c, 0)) for c in ("waiting", "in_flight", *FINISHED_COUNTERS))
    return max(0, int(campaign.get("released", 0)) - rows)


def retry_lease_seconds(campaign: dict[str, Any], now: float) -> float:
    """How long a released retry is not handed out again. Its chunk joins the queue behind every chunk released
    and not yet finished; when dispatch keeps a slower pace than the campaign's rate (a slow provider) those can
    take longer than RETRY_LEASE_SECONDS, and a retry released again at the lease's end would be a second copy
    (its claim sends nothing, but the lease, the copy's claim and their index entries are writes; at 100,000
    recipients on the local stack three per retry). So the lease is twice the wait at the pace kept since the
    start (finished recipients per second), at least RETRY_LEASE_SECONDS and at most MAX_RETRY_LEASE_SECONDS."""
    elapsed = now - int(campaign.get("started_at_ms", 0)) / 1000
    finished = sum(int(campaign.get(c, 0)) for c in FINISHED_COUNTERS)
    if finished <= 0 or elapsed <= 0:
        return RETRY_LEASE_SECONDS
    wait = outstanding(campaign) / (finished / elapsed)
    return min(MAX_RETRY_LEASE_SECONDS, max(RETRY_LEASE_SECONDS, 2 * wait))


def _due_entries(campaign: dict[str, Any], now: float, limit: int) -> list[Entry]:
    """Queued deliveries due now (retries, and recipients parked by a pause or their window), as entries; they
    are leased by `_lease_due` once their chunks are queued."""
    entries: list[Entry] = []
    for bucket in range(int(campaign.get("buckets", 1))):
        if len(entries) >= limit:
            break
        pk = keys.delivery_pk(campaign["pk"], bucket)
        for due in deliveries.due_deliveries(pk, now, limit - len(entries)):
            if due.get("state") != DeliveryState.QUEUED:
                continue  # a call or a receipt wait in flight: the sweep's
            body = {
                **due.get("recipient", {}),
                "id": due["sk"],
                "previous_attempt": int(due["attempt"]),
                "fresh": False,
            }
            if "next_destination_index" in due:  # a retry or a failover: where the next try goes
                body["destination_index"] = int(due["next_destination_index"])
                body["destination_try"] = int(due["next_try"])
            if "next_channel_step" in due:  # on the campaign's fallback channel (decision 39)
                body["channel_step"] = int(due["next_channel_step"])
            entries.append(Entry(body, None, due_at=float(due["due_at"])))
    return entries


def _lease_due(campaign: dict[str, Any], released: list[Entry], now: float) -> None:
    """Push the due time of the queued deliveries among `released` (their chunks queued) out by the retry
    lease, so the next release does not hand them out again. Conditional on the due time the release read: a
    dispatch that got the chunk first and parked the recipient again (a pause, its window) keeps its own due
    time, and one that claimed it leaves nothing to lease."""
    until = now + retry_lease_seconds(campaign, now)
    buckets = int(campaign.get("buckets", 1))
    for entry in released:
        if entry.due_at is None:
            continue  # a fresh recipient: the list cursor moves past it
        rid, attempt = entry.body["id"], int(entry.body["previous_attempt"])
        deliveries.lease_due(deliveries.pk_for(campaign["pk"], buckets, rid), rid, attempt, until, was=entry.due_at)


def _send(pk: str, campaign: dict[str, Any], plan: ReleasePlan, entries: list[Entry]) -> int:
    """Queue the entries in the plan's chunks (split further where a chunk is too large for one message);
    returns how many entries, from the first, went out (or were failed as too large)."""
    messages: list[tuple[str, int]] = []
    # Chunks arrive ahead of their places, where dispatch's pacing ledger holds them: SQS delays are whole
    # seconds and its polls add latency, and a chunk arriving after its place would leave a gap in the pace.
    ahead = get_settings().release_ahead_seconds
    covers: list[int] = []  # entries each message settles, a too-large recipient counted with the next
    carried = start = 0
    for planned in plan.chunks:
        end = start + planned.size
        while 0 < end < len(entries) and not entries[end - 1].last:  # a recipient's messages go out together
            end += 1
        part = entries[start:end]
        if not part:
            break
        for body, count in _messages(pk, campaign, part):
            if body is None:
                carried += count
                continue
            messages.append((body, max(0, planned.delay_seconds - ahead)))
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
            deliveries.fail_unsent(target, rid, TOO_LARGE, recipient.get("slot"))
        else:
            deliveries.fail_queued(target, rid, int(recipient["previous_attempt"]), TOO_LARGE)
        return [(None, 1)]
    half = len(part) // 2
    return _messages(pk, campaign, part[:half]) + _messages(pk, campaign, part[half:])
