"""Dispatch: claims each recipient of a chunk, renders its message, sends it, records the outcome.

- Claims are conditional writes tagged with the chunk's claim token (carried in the message body, so
  it survives redelivery and a redrive), so a duplicate delivery or a chunk released twice sends
  nothing twice.
- A recipient this chunk claimed earlier and left in flight (the worker died after claiming) may have
  been sent: it is sent again with the same idempotency key only through a channel that honours the
  key, and is otherwise recorded as `unknown`, never resent blindly.
- Within an invocation, a chunk's recipients are sent concurrently (bounded); records are taken one
  after another while the time left covers a send. What is left for lack of time is queued again as a
  new message holding only the unfinished recipients (a new message starts at receive count 0, so a
  chunk handed back many times is never dead-lettered for it); if that send fails, the records are
  handed back as batch item failures, visible again at once.
- The campaign's status is read again at least every `status_recheck_seconds`: a pause stops sends
  within that time, and released recipients are parked for the resume.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.channels import (
    Channel,
    EmailParts,
    MessagesOptions,
    OutgoingMessage,
    VoiceCall,
    WhatsAppTemplate,
    channel_for,
    text_limit,
)
from chalicelib.channels.http_action import http_request
from chalicelib.domain import brand, ncco, pacing, responses, segments, variants
from chalicelib.domain import sessions as session_rules
from chalicelib.domain.campaign import CampaignStatus
from chalicelib.domain.delivery import DeliveryState, OutcomeKind, SendOutcome, SkipReason
from chalicelib.domain.retry import NO_RETRIES, RetryPolicy
from chalicelib.domain.template import TRACKER, TemplateError, localised, pick_locale, render
from chalicelib.domain.windows import Openings
from chalicelib.observability import logger
from chalicelib.operations import calls, concurrency, links, outcomes, receipt_waits, sending_limits
from chalicelib.operations.concurrency import NoSlot, SlotPool
from chalicelib.operations.outcomes import Route, Target
from chalicelib.settings import get_settings
from chalicelib.store import campaigns, caps, deliveries, keys, limits, lists, pace, queue, sessions
from chalicelib.store.deliveries import Written

# Statuses whose released recipients are kept for later; a cancelled campaign's are dropped.
HOLDING = frozenset({CampaignStatus.PAUSED, CampaignStatus.DRAFT})
# A WhatsApp template parameter's longest rendered value (Meta's limit on a body parameter).
WHATSAPP_PARAMETER = 1024
# A channel that honours idempotency keys gets an ambiguous send repeated this often, with the same key.
AMBIGUOUS_RESENDS = 2
# A chunk whose paced start is further off is queued again, delayed until then, rather than held here.
MAX_PACING_WAIT_SECONDS = 5.0
# The chunk's start on its campaign's pacing ledger, once taken (a chunk queued again for later keeps it).
PACED_AT = "paced_at"
# Each recipient's send time under the account's sender and country limits, once taken (likewise kept).
SENDS_AT = "sends_at"
# A call campaign's recipient waits this long for a slot that calls under way hold, then comes back this
# much later (a new message, delayed): the calls' events give slots back as they end.
CALL_SLOT_WAIT_SECONDS = 1.0
CALL_SLOT_RETRY_SECONDS = 5.0
# What a dispatch run without a Lambda context (a direct call) takes as its time left.
NO_CONTEXT_SECONDS = 60.0


class SendClock:
    """Holds this process's sends of each campaign to its rate in any one second, as the clock reads when
    each send goes: at most `most` sends in any `window` (`most` is the rate rounded down, at least 1, and
    `window` the time `most` sends take at the guarded rate of decision 26). A thread held up (a stalled
    process, a slow claim) then does not send bunched with the next ones to catch up with its place; the
    sends after it wait, and catch up only as far as the last second's sends leave room, at twice the rate
    at most (a burst would reach the provider spread out by the process's own jitter). Never more than
    `MAX_SLIP_SECONDS` late: the status was read before the claim, and a pause must stop sends soon."""

    MAX_SLIP_SECONDS = outcomes.SEND_SLIP_SECONDS
    KEPT = 1000  # campaigns remembered before the idle ones are forgotten

    def __init__(self, clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self._lock = threading.Lock()
        self._sent: dict[str, deque[float]] = {}
        self._clock = clock
        self._sleep = sleep

    def wait_turn(self, campaign_pk: str, rate: float) -> None:
        most = max(1, math.floor(rate))
        window = most / pacing.paced_rate(rate)
        latest = self._clock() + self.MAX_SLIP_SECONDS
        while True:
            with self._lock:
                now = self._clock()
                if len(self._sent) > self.KEPT:
                    self._sent = {pk: sent for pk, sent in self._sent.items() if sent and sent[-1] > now - 60}
                sent = self._sent.setdefault(campaign_pk, deque(maxlen=most))
                if sent.maxlen != most:  # the rate changed
                    sent = self._sent[campaign_pk] = deque(sent, maxlen=most)
                due = max(
                    sent[0] + window if len(sent) == most else now,  # the rate in any one second
                    sent[-1] + window / most / 2 if sent else now,  # catching up at twice the rate at most
                )
                due = min(due, latest)
                if now >= due:
                    sent.append(now)
                    return
            self._sleep(due - now)


SEND_CLOCK = SendClock()


class ChunkIncomplete(RuntimeError):
    """Some recipients of a chunk were not finished; SQS redelivers it and the finished ones are skipped."""


class OutOfTime(RuntimeError):
    """Too little time is left in this invocation to start another send; `left` holds the chunk's
    recipients that were not finished (None: the whole chunk)."""

    def __init__(self, message: str, left: list[dict[str, Any]] | None = None, later: float = 0.0) -> None:
        super().__init__(message)
        self.left = left
        self.later = later  # seconds before what is left is worth trying again (calls holding every slot)


@dataclass
class Deadline:
    """What is left of the invocation, less the time one more send may take and a margin."""

    context: Any
    reserve_ms: float

    def allows_another_send(self, after_seconds: float = 0.0) -> bool:
        if self.context is None or not hasattr(self.context, "get_remaining_time_in_millis"):
            return True
        return bool(self.context.get_remaining_time_in_millis() - after_seconds * 1000 > self.reserve_ms)

    def seconds_left(self) -> float:
        """The invocation's time left (NO_CONTEXT_SECONDS when it runs without a Lambda context)."""
        if self.context is None or not hasattr(self.context, "get_remaining_time_in_millis"):
            return NO_CONTEXT_SECONDS
        return float(self.context.get_remaining_time_in_millis()) / 1000

    def last_start(self) -> float:
        """The last moment (time.monotonic()) another send may start."""
        return time.monotonic() + self.seconds_left() - self.reserve_ms / 1000


@dataclass
class CampaignWatch:
    """The campaign as dispatch sees it, its status read again once it is older than `max_age` seconds."""

    campaign: dict[str, Any]
    max_age: float
    read_at: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    pool: SlotPool | None = None

    def slot_pool(self, deadline: Deadline) -> SlotPool:
        """The campaign's concurrency slots this invocation holds (taken as its sends need them)."""
        with self.lock:
            if self.pool is None:
                lease = deadline.seconds_left() + concurrency.LEASE_MARGIN_SECONDS
                self.pool = SlotPool(self.campaign["pk"], lease)
            return self.pool

    def close(self) -> None:
        """The invocation ends: its slots go back."""
        if self.pool is not None:
            self.pool.close()

    @cached_property
    def openings(self) -> Openings:
        """The campaign's window (as it was when this invocation read it), applied to each recipient."""
        return Openings.of(self.campaign)

    @cached_property
    def limits(self) -> dict[tuple[str, str], float]:
        """The account's sender and country limits (kind, name) -> rate, as this invocation read them."""
        account, _ = keys.split_campaign_pk(self.campaign["pk"])
        return {(item["kind"], item["name"]): float(item["rate_per_second"]) for item in limits.account_limits(account)}

    @property
    def status(self) -> CampaignStatus:
        """The status, read again (with the expiry) by one of the sending threads when it is older than
        `max_age`; the others go on with the status as last read meanwhile instead of waiting."""
        if time.monotonic() - self.read_at >= self.max_age and self.lock.acquire(blocking=False):
            try:
                if time.monotonic() - self.read_at >= self.max_age:
                    fresh = campaigns.get_live_fields(self.campaign["pk"])
                    if fresh is not None:
                        live = {
                            "status": fresh["status"],
                            "expires_at": fresh.get("expires_at"),
                            "max_concurrent": fresh.get("max_concurrent"),
                        }
                        if "rate_per_second" in fresh:  # a PATCHed rate paces the next chunk
                            live["rate_per_second"] = fresh["rate_per_second"]
                        self.campaign = {**self.campaign, **live}
                    self.read_at = time.monotonic()
            finally:
                self.lock.release()
        return CampaignStatus(self.campaign["status"])


@dataclass
class Invocation:
    """State shared by the records of one invocation: the send pool, the deadline, the campaigns read."""

    deadline: Deadline
    pool: ThreadPoolExecutor
    watches: dict[str, CampaignWatch] = field(default_factory=dict)

    def watch(self, pk: str) -> CampaignWatch | None:
        if pk not in self.watches:
            campaign = campaigns.get_campaign_by_pk(pk)
            if campaign is None:
                return None
            self.watches[pk] = CampaignWatch(campaign, get_settings().status_recheck_seconds)
        return self.watches[pk]


def handle_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = get_settings()
    reserve_ms = (settings.provider_timeout_seconds + settings.dispatch_deadline_margin_seconds) * 1000
    # One processor and pool per invocation: they hold per-batch state, and the local runner runs
    # several invocations at once in one process.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    with ThreadPoolExecutor(max_workers=settings.dispatch_concurrency, thread_name_prefix="send") as pool:
        invocation = Invocation(Deadline(context, reserve_ms), pool)
        try:
            answer = _process(event, invocation, processor)
        finally:
            for watch in invocation.watches.values():
                watch.close()
    return answer


def _process(event: dict[str, Any], invocation: Invocation, processor: BatchProcessor) -> dict[str, Any]:
    """The batch's chunks; what is left of them for lack of time (or of a concurrency slot) is queued again.

    Every chunk is started (its span taken, its sends queued on the invocation's pool) before any is waited
    for: waited for one by one, each chunk's slowest sends held the next chunk's back, and a quarter of the
    pool sent while the rest stood idle. Each record's outcome is still its own chunk's."""
    left_over: dict[str, dict[str, Any]] = {}  # message id -> the chunk of what it did not finish
    delays: dict[str, int] = {}  # message id -> the delay its left-over chunk is queued with
    started = {record["messageId"]: _start(record["body"], invocation) for record in event.get("Records", [])}

    def record_handler(record: SQSRecord) -> None:
        chunk, begun = started[record.message_id]
        try:
            if isinstance(begun, BaseException):
                raise begun
            if begun is not None:
                finish_chunk(begun)
        except OutOfTime as out:
            # What is left takes a new span on the campaign's ledger when it comes back.
            kept = {k: v for k, v in chunk.items() if k not in (PACED_AT, SENDS_AT)}
            left_over[record.message_id] = kept if out.left is None else {**kept, "recipients": out.left}
            delays[record.message_id] = math.ceil(out.later)
            raise

    answer: dict[str, Any] = dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor)
    )
    requeued = _queue_again(left_over, delays)
    answer["batchItemFailures"] = [f for f in answer["batchItemFailures"] if f["itemIdentifier"] not in requeued]
    _make_visible_again(event, set(left_over) - requeued)
    return answer


def _start(body: str, invocation: Invocation) -> tuple[dict[str, Any], StartedChunk | Exception | None]:
    """A record's chunk and its sends under way (None: nothing to wait for), or what stopped it starting."""
    chunk: dict[str, Any] = {}
    try:
        chunk = json.loads(body)
        if not invocation.deadline.allows_another_send():
            raise OutOfTime("handed back before the deadline")
        return chunk, start_chunk(chunk, invocation)
    except Exception as exc:  # raised again when the record is handled, as the record's failure
        return chunk, exc


def _queue_again(left_over: dict[str, dict[str, Any]], delays: dict[str, int]) -> set[str]:
    """Queue what was left for lack of time as new messages, with the same claim token (so a copy of a
    chunk that also comes back sends nothing twice); returns the ids of the records queued again, which
    then count as done. A batch item failure would cost a receive each time, and after maxReceiveCount
    hand-backs the chunk's untried recipients would be dead-lettered."""
    ids = list(left_over)
    if not ids:
        return set()
    try:
        queue.send_chunks_encoded([(queue.encode(left_over[i]), delays.get(i, 0)) for i in ids])
    except queue.QueueSendError as error:
        logger.warning("some left-over chunks could not be queued again; handed back", extra={"sent": error.sent})
        return set(ids[: error.sent])
    except Exception:
        logger.exception("left-over chunks could not be queued again; handed back")
        return set()
    return set(ids)


def _make_visible_again(event: dict[str, Any], handed_back: set[str]) -> None:
    """Records handed back (their new copy could not be queued) come back now, not after the visibility
    timeout (records that failed on an error wait it out, so a poison chunk does not spin)."""
    handles = [r["receiptHandle"] for r in event.get("Records", []) if r["messageId"] in handed_back]
    if handles:
        try:
            queue.make_visible(handles)
        except Exception:  # they come back after the visibility timeout all the same
            logger.exception("could not make handed-back chunks visible again")


@dataclass
class StartedChunk:
    """A chunk whose sends are queued on the invocation's pool, one future per recipient."""

    campaign: dict[str, Any]
    recipients: list[dict[str, Any]]
    futures: list[Future[int]]


def start_chunk(chunk: dict[str, Any], invocation: Invocation) -> StartedChunk | None:
    """Take the chunk's span and queue its sends; None when nothing is to be sent now (no campaign, or the
    chunk queued again for a start further off)."""
    watch = invocation.watch(chunk["campaign"])
    if watch is None:
        return None
    campaign = watch.campaign
    policy = RetryPolicy.model_validate(campaign["retry_policy"]) if campaign.get("retry_policy") else NO_RETRIES
    token = str(chunk["claim"])
    rate = pacing.paced_rate(float(campaign["rate_per_second"]))
    # Spans start a little ahead, so the first sends are ready for their places; not in an invocation whose
    # time left would not cover that wait (it sends what it can at once, as before the lead).
    lead = get_settings().pacing_lead_seconds
    lead = lead if invocation.deadline.allows_another_send(2 * lead) else 0.0
    start = _paced_start(watch, chunk, rate, lead)
    if start is None:
        return None
    times = _send_times(watch, chunk, [start + i / rate for i in range(len(chunk["recipients"]))], lead)
    if times is None:
        return None
    excluded = _excluded(campaign, chunk["recipients"])
    suppressed = ChunkSuppressions(campaign, chunk["recipients"])
    futures = [
        invocation.pool.submit(_skip, campaign, recipient, SkipReason.EXCLUDED)
        if recipient["id"] in excluded
        else invocation.pool.submit(_one, watch, policy, recipient, token, invocation.deadline, at, suppressed)
        for recipient, at in zip(chunk["recipients"], times, strict=True)
    ]
    return StartedChunk(campaign, chunk["recipients"], futures)


def finish_chunk(started: StartedChunk) -> int:
    """Wait for the chunk's sends; returns how many were made. Raises ChunkIncomplete when any failed (SQS
    redelivers the chunk), OutOfTime with the recipients left for lack of time."""
    recipients, campaign = started.recipients, started.campaign
    sent, left, errors, later = 0, [], 0, 0.0
    for recipient, future in zip(recipients, started.futures, strict=True):
        error = future.exception()
        if error is None:
            sent += future.result()
        elif isinstance(error, OutOfTime):
            left.append(recipient)
            later = max(later, error.later)
        else:
            errors += 1
            logger.error("dispatch failed", extra={"campaign": campaign["pk"]}, exc_info=error)
    if errors:
        raise ChunkIncomplete(f"{errors} of {len(recipients)} recipients failed; SQS redelivers")
    if left:
        raise OutOfTime(f"{len(left)} of {len(recipients)} recipients left for lack of time", left, later)
    return sent


def _paced_start(watch: CampaignWatch, chunk: dict[str, Any], rate: float, lead: float) -> float | None:
    """When the chunk's first send may go: a span of the campaign's pacing ledger, taken once per chunk (so
    chunks sent by several workers, or late ones, keep the campaign's rate between them). A start further
    off than MAX_PACING_WAIT_SECONDS does not hold the worker: the chunk is queued again, delayed until
    then, carrying its start (None is returned; a failed send raises and the record comes back)."""
    if PACED_AT in chunk:
        return float(chunk[PACED_AT])
    now = time.time()
    if watch.status != CampaignStatus.RUNNING:  # nothing is sent: its recipients are parked or dropped now
        return now
    start = pace.campaign_span(watch.campaign["pk"], len(chunk["recipients"]), rate, now + lead)
    if start - now > MAX_PACING_WAIT_SECONDS:
        delay = min(pacing.MAX_SQS_DELAY_SECONDS, math.ceil(start - now))
        queue.send_chunks_encoded([(queue.encode({**chunk, PACED_AT: start}), delay)])
        return None
    return start


def _send_times(watch: CampaignWatch, chunk: dict[str, Any], paced: list[float], lead: float) -> list[float] | None:
    """Each recipient's send time: its place in the campaign's span (`paced`), later where a sender or
    country limit of the account has it wait (a span of each limit's ledger per chunk, for the recipients
    it covers). Like a far campaign span, times further off than MAX_PACING_WAIT_SECONDS queue the chunk
    again, delayed, carrying them (None is returned)."""
    if SENDS_AT in chunk:
        return [float(at) for at in chunk[SENDS_AT]]
    if watch.status != CampaignStatus.RUNNING or not watch.limits:
        return paced
    campaign = watch.campaign
    account, _ = keys.split_campaign_pk(campaign["pk"])
    covered = [_limited_by(campaign, entry) for entry in chunk["recipients"]]
    times = sending_limits.send_times(account, watch.limits, covered, paced, lead)
    first = min(times, default=0.0)
    now = time.time()
    if first - now > MAX_PACING_WAIT_SECONDS:
        delay = min(pacing.MAX_SQS_DELAY_SECONDS, math.ceil(first - now))
        queue.send_chunks_encoded([(queue.encode({**chunk, SENDS_AT: times}), delay)])
        return None
    return times


def _limited_by(campaign: dict[str, Any], entry: dict[str, Any]) -> list[tuple[str, str]]:
    """The limits a recipient's send may come under: its sender's (the variant's, else the campaign's) and
    its destination's country."""
    target = outcomes.target_of(campaign, entry)
    segment = _segment(campaign, target)
    campaign = segments.effective(campaign, segment.get("name"), target.channel_step)
    route = _route(campaign["channel"], target)
    if route is None:
        return []
    sender = str(_content(campaign, target, _variant(campaign, target.recipient.id), "sender") or campaign["sender"])
    return sending_limits.limit_keys(sender, route.address)


def _excluded(campaign: dict[str, Any], entries: list[dict[str, Any]]) -> set[str]:
    """Ids of the chunk's new recipients found in the campaign's exclusion lists, by id or by a destination
    (one BatchGetItem for the chunk). Retries and parked recipients were checked when first released."""
    list_ids = list(campaign.get("exclusion_list_ids") or [])
    fresh = [outcomes.recipient_of(e) for e in entries if e["fresh"]]
    if not list_ids or not fresh:
        return set()
    account_id, _ = keys.split_campaign_pk(campaign["pk"])
    candidates = {r.id for r in fresh} | {d.address for r in fresh for d in r.destinations}
    found = lists.listed_ids(account_id, list_ids, candidates)
    return {e["id"] for e, r in zip([e for e in entries if e["fresh"]], fresh, strict=True)
            if r.id in found or any(d.address in found for d in r.destinations)}  # fmt: skip


class ChunkSuppressions:
    """The suppressions of a chunk's recipients (decision 40): every (scope, destination) its recipients
    could be sent on, read in one BatchGetItem when the first of them is checked, and read again when a
    check finds the last read older than `suppression_recheck_seconds` (a chunk paced over a minute still
    sees a STOP within that), so a recipient who opted out is skipped without a read of their own.

    The same BatchGetItem reads the WhatsApp session windows (decision 46) of the recipients a session message
    could go to: (sending number, WhatsApp destination) for each part of the campaign sending WhatsApp text. A
    window is judged at each check against the clock (`sessions.window_open`, with its margin), not at the
    read: a later read can only find a later message, so a window that closes while the chunk is paced is
    seen closed at once, and one opened since is seen at the next re-read."""

    def __init__(self, campaign: dict[str, Any], entries: list[dict[str, Any]]) -> None:
        self._account, _ = keys.split_campaign_pk(campaign["pk"])
        parts = [
            campaign,
            *(campaign.get("segments") or []),
            *([campaign["fallback"]] if campaign.get("fallback") else []),
        ]
        channels = {str(part["channel"]) for part in parts if part.get("channel")}
        scoped = [(c, responses.send_scope(c, campaign.get("category"))) for c in channels]
        recipients = [outcomes.recipient_of(entry) for entry in entries]
        self._wanted = {
            (scope, destination.address)
            for recipient in recipients
            for channel, scope in scoped
            if scope is not None
            for _, destination in recipient.destinations_for(channel)
        }
        numbers = _session_numbers(campaign, parts)
        self._sessions_wanted = {
            (number, destination.address)
            for recipient in recipients
            if numbers
            for _, destination in recipient.destinations_for("whatsapp")
            for number in numbers
        }
        self._found: set[tuple[str, str]] = set()
        self._last: dict[tuple[str, str], float] = {}
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def _read_if_due(self) -> None:
        """Read the chunk's keys again when the last read is older than the recheck (or something new is
        wanted); the lock held."""
        now = time.monotonic()
        if self._read_at is None or now - self._read_at > get_settings().suppression_recheck_seconds:
            self._found, self._last = sessions.read(self._account, self._wanted, self._sessions_wanted)
            self._read_at = now

    def holds(self, channel: str, category: str | None, address: str) -> bool:
        scope = responses.send_scope(channel, category)
        if scope is None:
            return False
        with self._lock:
            if (scope, address) not in self._wanted:
                self._wanted.add((scope, address))
                self._read_at = None
            self._read_if_due()
            return (scope, address) in self._found

    def session_open(self, sender: str, address: str) -> bool:
        """Whether `address` wrote to the number `sender` on WhatsApp recently enough for a session message now."""
        number = responses.normal_address(sender)
        with self._lock:
            if (number, address) not in self._sessions_wanted:
                self._sessions_wanted.add((number, address))
                self._read_at = None
            self._read_if_due()
            last = self._last.get((number, address))
        return session_rules.window_open(last, time.time())


def _session_numbers(campaign: dict[str, Any], parts: list[dict[str, Any]]) -> set[str]:
    """The numbers the campaign's WhatsApp session messages go from: the campaign's sender and its variants'
    and segments' (those on its own channel) when it sends WhatsApp text; each segment's or the fallback's
    sender when that part sends WhatsApp text."""
    numbers: set[str] = set()
    if session_rules.sends_session(campaign):
        own = [campaign, *(campaign.get("variants") or []), *(g for g in parts[1:] if not g.get("channel"))]
        numbers.update(responses.normal_address(str(p.get("sender") or campaign["sender"])) for p in own)
    numbers.update(
        responses.normal_address(str(p.get("sender") or campaign["sender"]))
        for p in parts[1:]
        if session_rules.sends_session(p)
    )
    return numbers


def _skip_unclaimed(
    campaign: dict[str, Any], policy: RetryPolicy, target: Target, token: str, reason: SkipReason
) -> int:
    """Skipped before any claim: the destination is suppressed on the channel (`opted_out`), or a WhatsApp
    session message would go to someone with no open 24-hour window (`no_session`); never sent (unless this
    chunk had claimed it already)."""
    if target.fresh:
        skipped = deliveries.skip_unsent(target.pk, target.rid, reason, target.slot)
    else:
        skipped = deliveries.skip_queued(target.pk, target.rid, target.previous_attempt, reason)
    return 0 if skipped.ok else _finish_own_claim(campaign, policy, target, token, skipped)


def _skip(campaign: dict[str, Any], entry: dict[str, Any], reason: SkipReason) -> int:
    rid = str(entry["id"])
    pk = deliveries.pk_for(campaign["pk"], int(campaign.get("buckets", 1)), rid)
    deliveries.skip_unsent(pk, rid, reason, entry.get("slot"))
    return 0


def _route(channel: str, target: Target) -> Route | None:
    """Where this try goes: the destination a retry or failover named, else the channel's first one."""
    if target.destination_index is not None:
        for index, destination in target.recipient.destinations_for(channel):
            if index == target.destination_index:
                return Route(index, destination.address, target.destination_try)
    first = target.recipient.destination_for(channel)
    return Route(first[0], first[1].address, 1) if first else None


def _one(
    watch: CampaignWatch,
    policy: RetryPolicy,
    recipient: dict[str, Any],
    token: str,
    deadline: Deadline,
    at: float,
    suppressed: ChunkSuppressions,
) -> int:
    """One recipient of a chunk, sent no earlier than `at` (its place in the chunk's paced span)."""
    # Its place in the paced span, or later while the provider's throttling holds the campaign's sends off.
    wait = max(at, outcomes.THROTTLED.until(watch.campaign["pk"])) - time.time()
    if not deadline.allows_another_send(max(0.0, wait)):
        raise OutOfTime("no time left for this recipient")
    if wait > 0:
        time.sleep(wait)
    limit = watch.campaign.get("max_concurrent")
    if not limit:
        return _attempt(watch, policy, recipient, token, suppressed)
    pool = watch.slot_pool(deadline)
    calling = channel_for(watch.campaign["channel"]).asynchronous_outcome
    # A call holds its slot for minutes, until its last event: rather than wait, its recipient comes back.
    until = min(deadline.last_start(), time.monotonic() + CALL_SLOT_WAIT_SECONDS) if calling else deadline.last_start()
    try:
        slot = pool.acquire(int(limit), until)
    except NoSlot as none:
        later = CALL_SLOT_RETRY_SECONDS if calling else 0.0
        raise OutOfTime(f"no time left for this recipient: {none}", later=later) from none
    held = HELD_SLOT.set((pool, slot))
    try:
        return _attempt(watch, policy, recipient, token, suppressed)
    finally:
        HELD_SLOT.reset(held)
        pool.release(slot)  # nothing when a call took it over (calls.placed)


def _attempt(
    watch: CampaignWatch, policy: RetryPolicy, recipient: dict[str, Any], token: str, suppressed: ChunkSuppressions
) -> int:
    """One recipient's attempt, as of now: sent, or held, parked, skipped or expired."""
    status = watch.status
    target = outcomes.target_of(watch.campaign, recipient)
    variant = _variant(watch.campaign, target.recipient.id)  # a person's messages share one A/B arm
    if variant is HELD_OUT:  # first thing: a held-out recipient is never parked, so never queued
        if target.fresh:
            return _skip(watch.campaign, recipient, SkipReason.HELD_OUT)
        variant = {}
    segment = _segment(watch.campaign, target)
    if segment is NO_SEGMENT:  # so is one that matches no segment of a campaign skipping those
        if target.fresh:
            return _skip(watch.campaign, recipient, SkipReason.NO_SEGMENT)
        segment = {}
    # A segment with a channel of its own: its recipients get that channel, sender and content.
    # On the fallback's step (a retry after the campaign's channel did not reach it), the fallback's channel.
    campaign = segments.effective(watch.campaign, segment.get("name"), target.channel_step)
    if status != CampaignStatus.RUNNING:
        return _hold(campaign, policy, target, token, park=status in HOLDING)
    if campaign.get("expires_at") and time.time() >= float(campaign["expires_at"]):
        return _expire(campaign, policy, target, token)
    route = _route(campaign["channel"], target)
    if route is None and outcomes.fallback_destination(campaign, target, "no_destination") is not None:
        # No address for the channel: the fallback's channel from the first attempt (decision 39).
        target = replace(target, channel_step=1, destination_index=None)
        campaign = segments.effective(watch.campaign, segment.get("name"), 1)
        route = _route(campaign["channel"], target)
    if route is None:
        return _no_destination(campaign, target)
    if suppressed.holds(campaign["channel"], campaign.get("category"), route.address):
        return _skip_unclaimed(campaign, policy, target, token, SkipReason.OPTED_OUT)
    if target.channel_step:  # the fallback's content, not the A/B variant's (its name still counts)
        variant = {"name": variant["name"]} if variant.get("name") else {}
    opening = watch.openings.wait(target.recipient, route.address, datetime.now(UTC))
    if opening is not None:
        return _wait_for_window(campaign, policy, target, token, opening)
    # Judged at the send, after any wait for the send window: the session must be open when it goes.
    if session_rules.sends_session(campaign):
        sender = str(_content(campaign, target, variant, "sender") or campaign["sender"])
        if not suppressed.session_open(sender, route.address):
            if outcomes.fallback_destination(campaign, target, SkipReason.NO_SESSION.value) is not None:
                # No window: the fallback's channel at once, on this attempt (decision 46).
                target = replace(target, channel_step=1, destination_index=None)
                campaign = segments.effective(watch.campaign, segment.get("name"), 1)
                variant = {"name": variant["name"]} if variant.get("name") else {}
                route = _route(campaign["channel"], target)
                if route is None:
                    return _no_destination(campaign, target)
                if suppressed.holds(campaign["channel"], campaign.get("category"), route.address):
                    return _skip_unclaimed(campaign, policy, target, token, SkipReason.OPTED_OUT)
            else:
                return _skip_unclaimed(campaign, policy, target, token, SkipReason.NO_SESSION)
    capped = _Cap.of(campaign, route.address) if target.fresh else None
    if capped is not None and not capped.take():
        return _skip(campaign, recipient, SkipReason.CAPPED)
    if target.fresh:
        claim = deliveries.claim_first(
            target.pk,
            target.rid,
            token,
            route.destination,
            route.tries,
            variant=variant.get("name"),
            segment=segment.get("name"),
            channel_step=target.channel_step,
            slot=target.slot,
        )
    else:
        claim = deliveries.claim_queued(
            target.pk,
            target.rid,
            target.previous_attempt,
            token,
            route.destination,
            route.tries,
            variant=variant.get("name"),
            segment=segment.get("name"),
            channel_step=target.channel_step,
        )
    if claim.ok:
        SEND_CLOCK.wait_turn(campaign["pk"], float(campaign["rate_per_second"]))
        if outcomes.ACCOUNT_REFUSED.refused(campaign["pk"]):  # seen by a send of this process just now
            not_sent = SendOutcome.account("not sent: the provider had just refused the account")
            outcomes.record_outcome(campaign, target, target.attempt, route, policy, not_sent, time.time())
            return 0
        return _send(campaign, policy, target, target.attempt, route, variant)
    if capped is not None:  # a duplicate of the chunk: the send, if any, was counted by the claim that won
        capped.give_back()
    return _finish_own_claim(campaign, policy, target, token, claim)


# The concurrency slot the sending thread holds for this attempt (its invocation's pool, the slot's index).
HELD_SLOT: ContextVar[tuple[SlotPool, int] | None] = ContextVar("held_slot", default=None)
HELD_OUT: dict[str, Any] = {"name": variants.HELD_OUT}
NO_SEGMENT: dict[str, Any] = {"name": SkipReason.NO_SEGMENT.value}


def _segment(campaign: dict[str, Any], target: Target) -> dict[str, Any]:
    """The first segment the recipient matches ({} without segments, or matching none of a campaign that
    sends those its own content), or NO_SEGMENT (matching none of a campaign that skips those). In an `every`
    campaign, the segment the message's slot names, as the release matched it (decision 49)."""
    defined = campaign.get("segments")
    if not defined:
        return {}
    if target.slot is not None:
        found = segments.slot_segment(campaign, target.slot)
    else:
        found = segments.segment_for(defined, target.recipient, datetime.now(UTC))
    if found is not None:
        return dict(found)
    return NO_SEGMENT if campaign.get("no_segment") == "skip" else {}


def _content(campaign: dict[str, Any], target: Target, variant: dict[str, Any], field: str) -> Any:
    """A field the recipient's A/B variant, else its segment, may set instead of the campaign."""
    if variant.get(field):
        return variant[field]
    segment = _segment(campaign, target)
    return segment.get(field) if segment is not NO_SEGMENT else None


def _variant(campaign: dict[str, Any], rid: str) -> dict[str, Any]:
    """The recipient's A/B variant ({} without variants), or HELD_OUT; the same on every attempt."""
    if not campaign.get("variants") and not campaign.get("holdout_percent"):
        return {}
    _, campaign_id = keys.split_campaign_pk(campaign["pk"])
    chosen = variants.assign(
        campaign_id, rid, campaign.get("variants") or [], float(campaign.get("holdout_percent", 0))
    )
    if chosen == variants.HELD_OUT:
        return HELD_OUT
    return chosen if isinstance(chosen, dict) else {}


@dataclass(frozen=True)
class _Cap:
    """The campaign's frequency cap as it applies to one destination (first attempts only)."""

    account_id: str
    category: str
    destination: str
    max_messages: int
    period_seconds: float
    at: float

    @classmethod
    def of(cls, campaign: dict[str, Any], destination: str) -> _Cap | None:
        cap = campaign.get("frequency_cap")
        if not cap:
            return None
        account_id, _ = keys.split_campaign_pk(campaign["pk"])
        category = campaign.get("category", "transactional") if cap.get("scope") == "category" else caps.ALL_CATEGORIES
        return cls(
            account_id, category, destination, int(cap["max_messages"]), int(cap["period_days"]) * 86_400, time.time()
        )

    def take(self) -> bool:
        return caps.take(
            self.account_id,
            self.category,
            self.destination,
            max_messages=self.max_messages,
            period_seconds=self.period_seconds,
            now=self.at,
        )

    def give_back(self) -> None:
        caps.give_back(self.account_id, self.category, self.destination, self.at)


def _hold(campaign: dict[str, Any], policy: RetryPolicy, target: Target, token: str, *, park: bool) -> int:
    """The campaign is not running: keep released recipients queued, due as soon as it resumes (when
    paused), and finish one this very chunk had claimed before a crash, so it cannot stay in flight."""
    if park:
        if target.fresh:
            held = deliveries.park_unsent(target.pk, target.rid, target.data)
        else:
            held = Written(deliveries.lease_due(target.pk, target.rid, target.previous_attempt, time.time()))
        if held.ok:
            return 0
    current = held.current if park else deliveries.get_delivery(target.pk, target.rid)
    return _finish_own_claim(campaign, policy, target, token, Written(False, current))


def _finish_own_claim(campaign: dict[str, Any], policy: RetryPolicy, target: Target, token: str, claim: Written) -> int:
    """The claim did not happen: the recipient is done, held by another chunk, or this chunk's own
    claim from an earlier delivery that died after claiming (its send may have happened)."""
    current = claim.current
    if (
        current is None
        or current["state"] != DeliveryState.IN_FLIGHT
        or current.get("claimed_by") != token
        or int(current["attempt"]) != target.attempt
        or deliveries.RECEIPT_DUE in current  # sent, and waiting for its receipt (decision 48): nothing to finish
    ):
        return 0
    route = Route.of(current)
    channel = channel_for(campaign["channel"])
    if channel.honours_idempotency_key:  # same attempt, same key, same destination: sent at most once
        return _send(campaign, policy, target, target.attempt, route, _variant(campaign, target.recipient.id))
    error = "the send may have happened before a worker stopped; not resent (the channel takes no idempotency key)"
    deliveries.record_outcome(
        target.pk, target.rid, target.attempt, DeliveryState.UNKNOWN, provider_message_id=None, error=error
    )
    return 0


def _expire(campaign: dict[str, Any], policy: RetryPolicy, target: Target, token: str) -> int:
    """The campaign expired: the recipient is `expired`, never sent (unless this chunk had claimed it)."""
    if target.fresh:
        expired = deliveries.expire_unsent(target.pk, target.rid, target.slot)
    else:
        expired = deliveries.expire_queued(target.pk, target.rid, target.previous_attempt)
    return 0 if expired.ok else _finish_own_claim(campaign, policy, target, token, expired)


def _wait_for_window(campaign: dict[str, Any], policy: RetryPolicy, target: Target, token: str, opening: float) -> int:
    """Out of its send window: the recipient waits, queued and due when the window opens (a retry keeps the
    destination it was going to); one whose window never opens within a year fails."""
    if math.isinf(opening):
        return _fail_unsent(target, "window: the send window never opens in this recipient's time zones within a year")
    if target.fresh:
        waiting = deliveries.park_unsent(target.pk, target.rid, target.data, due_at=opening)
    else:
        waiting = Written(deliveries.lease_due(target.pk, target.rid, target.previous_attempt, opening))
    return 0 if waiting.ok else _finish_own_claim(campaign, policy, target, token, waiting)


def _no_destination(campaign: dict[str, Any], target: Target) -> int:
    """The recipient has no destination this channel can send to: failed for good, never claimed."""
    return _fail_unsent(
        target, f"no_destination: the recipient has no destination the {campaign['channel']} channel sends to"
    )


def _fail_unsent(target: Target, reason: str) -> int:
    """Failed for good without a send (never claimed)."""
    if target.fresh:
        deliveries.fail_unsent(target.pk, target.rid, reason, target.slot)
    else:
        deliveries.fail_queued(target.pk, target.rid, target.previous_attempt, reason)
    return 0


def _send(
    campaign: dict[str, Any], policy: RetryPolicy, target: Target, attempt: int, route: Route, variant: dict[str, Any]
) -> int:
    """Send one attempt with its A/B `variant`'s template and sender, else its segment's, else the campaign's;
    an email's parts, a WhatsApp template's parameters or an HTTP action's request rendered beside."""
    started = time.time()
    address = route.address
    recipient = target.recipient
    kind = recipient.destinations[route.index].type.value if route.index < len(recipient.destinations) else "phone"
    variables = {
        **(campaign.get("data") or {}),
        **recipient.attributes,
        # Each type's first destination (`phone`, `email`, ...), the one this try goes to for its own type.
        **{d.type.value: d.address for d in reversed(recipient.destinations)},
        kind: address,
        "id": target.recipient.id,
        "to": address,
        TRACKER: links.tracker(campaign, target.rid),  # `{{ url | track }}`: the recipient's link (decision 43)
    }
    channel = channel_for(campaign["channel"])
    source = (
        _content(campaign, target, variant, "template")
        or localised(campaign["template"], campaign.get("template_locales") or {}, target.recipient.locale)[0]
    )
    try:
        text = render(source, variables)
        email = _email_parts(campaign, variables, target.recipient.locale)
        if email is not None and campaign.get("email_brand"):  # the brand's layout around both parts
            text, html = brand.wrap(campaign["email_brand"], text, email.html, email.unsubscribe_url)
            email = replace(email, html=html)
        whatsapp = _whatsapp_template(campaign, variables, target.recipient.locale)
        request = http_request(campaign["action"], {**variables, "message": text}) if campaign.get("action") else None
        call = _voice_call(campaign, text, variables, target, attempt)
    except TemplateError as exc:
        return _not_sendable(target, attempt, f"template: {exc}")
    too_long = [i for i, value in enumerate(whatsapp.parameters if whatsapp else ()) if len(value) > WHATSAPP_PARAMETER]
    if too_long:
        return _not_sendable(
            target, attempt, f"whatsapp.parameters.{too_long[0]}: over {WHATSAPP_PARAMETER:,} characters"
        )
    limit = text_limit(channel, campaign["channel"])
    if limit is not None and len(text) > limit:
        return _not_sendable(target, attempt, f"text: {len(text):,} characters, over the provider's limit of {limit:,}")
    _, campaign_id = keys.split_campaign_pk(campaign["pk"])
    message = OutgoingMessage(
        channel=campaign["channel"],
        to=address,
        sender=_content(campaign, target, variant, "sender") or campaign["sender"],
        text=text,
        idempotency_key=f"{campaign_id}:{target.rid}:{attempt}",
        email=email,
        whatsapp=whatsapp,
        http=request,
        voice=call,
        options=_messages_options(campaign, target, variant),
        category=campaign.get("category"),
        tags={"campaign": campaign_id, "recipient": target.rid, "attempt": str(attempt)},
    )
    outcome = _send_once(channel, message)
    resends = AMBIGUOUS_RESENDS if channel.honours_idempotency_key else 0
    while outcome.kind == OutcomeKind.AMBIGUOUS and resends:
        resends -= 1
        outcome = _send_once(channel, message)
    if channel.asynchronous_outcome and outcome.kind == OutcomeKind.ACCEPTED:  # a call: its events end it
        if outcome.provider_message_id:
            calls.placed(campaign, target, attempt, outcome.provider_message_id, HELD_SLOT.get())
            return 1
        outcome = SendOutcome.ambiguous("the provider took the call but named no uuid: its events cannot be followed")
    if outcome.kind == OutcomeKind.ACCEPTED and (wait := receipt_waits.wait_seconds(campaign, target)) is not None:
        # The fallback waits for this message's receipt (decision 48): in flight until it comes, or its deadline.
        receipt_waits.await_receipt(campaign, target, attempt, route, outcome.provider_message_id, started, wait)
        return 1
    outcomes.record_outcome(campaign, target, attempt, route, policy, outcome, started)
    return 1


def _messages_options(campaign: dict[str, Any], target: Target, variant: dict[str, Any]) -> MessagesOptions | None:
    """An MMS's image (the variant's, else the segment's, else the campaign's), Viber's ttl, Messenger's tagging."""
    channel = campaign["channel"]
    if channel == "mms":
        image = _content(campaign, target, variant, "mms") or campaign.get("mms") or {}
        return MessagesOptions(image_url=image.get("image_url"))
    if channel == "viber_service":
        ttl = (campaign.get("viber") or {}).get("ttl")
        return MessagesOptions(viber_ttl=int(ttl) if ttl is not None else None)
    if channel == "messenger":
        tagging = campaign.get("messenger") or {}
        return MessagesOptions(messenger_category=tagging.get("category"), messenger_tag=tagging.get("tag"))
    return None


def _voice_call(
    campaign: dict[str, Any], text: str, variables: dict[str, Any], target: Target, attempt: int
) -> VoiceCall | None:
    """A voice campaign's call for one recipient: its NCCO rendered (or the text spoken in the recipient's
    language, then connected), with the event URL naming this attempt (TemplateError if it cannot be)."""
    content = campaign.get("voice")
    if campaign["channel"] != "voice" or not content:
        return None
    base = get_settings().webhook_base_url.rstrip("/")
    if not base:
        raise TemplateError("voice: WEBHOOK_BASE_URL is not configured, so the call's events could not come back")
    language = ncco.call_language(content.get("language") or "en-US", target.recipient.locale)
    if content.get("ncco"):
        actions = ncco.render_ncco(content["ncco"], lambda source: render(source, variables))
    else:
        connect = ncco.render_ncco([content["connect"]], lambda source: render(source, variables))[0] if content.get(
            "connect") else None  # fmt: skip
        actions = ncco.spoken_ncco(text, language, content.get("style"), bool(content.get("premium")), connect)
    account, campaign_id = keys.split_campaign_pk(campaign["pk"])
    query = urlencode({"account": account, "campaign": campaign_id, "recipient": target.rid, "attempt": attempt})
    event_url = f"{base}/v1/webhooks/vonage/voice?{query}"
    recording = content.get("record")
    if recording:  # the whole call recorded (first: it runs until the call ends), its links on their own events
        transcribed = (recording.get("transcription_language") or language) if recording.get("transcribe") else None
        record = ncco.recording(
            event_url, recording.get("format") or "mp3", bool(recording.get("beep_start")), transcribed
        )
        actions = [record, *actions]
    return VoiceCall(
        ncco=actions,
        event_url=event_url,
        machine_detection=content.get("machine_detection"),
        ringing_timer=int(content.get("ringing_timer", 60)),
        length_timer=int(content.get("length_timer", 900)),
    )


def _whatsapp_template(
    campaign: dict[str, Any], variables: dict[str, Any], locale: str | None
) -> WhatsAppTemplate | None:
    """A WhatsApp campaign's template with its parameters rendered for one recipient: in its locale's language
    where a WhatsApp template resource gives one (pt-BR, then pt, then the default)."""
    content = campaign.get("whatsapp")
    if campaign["channel"] != "whatsapp" or not content:
        return None
    localised_parts = campaign.get("whatsapp_locales") or {}
    tag = pick_locale(localised_parts, locale)
    if tag is not None:
        content = localised_parts[tag]
    parameters = tuple(render(source, variables) for source in content.get("parameters") or ())
    return WhatsAppTemplate(name=content["template_name"], locale=content["locale"], parameters=parameters)


def _email_parts(campaign: dict[str, Any], variables: dict[str, Any], locale: str | None) -> EmailParts | None:
    """An email campaign's subject, HTML part and unsubscribe link rendered for one recipient, in its locale
    where an email template gives one (TemplateError if one of them cannot be)."""
    content = campaign.get("email")
    if campaign["channel"] != "email" or not content:
        return None
    localised_parts = campaign.get("email_locales") or {}
    tag = pick_locale(localised_parts, locale)
    if tag is not None:
        content = {**content, **localised_parts[tag]}
    html = content.get("html")
    link = content.get("unsubscribe_url")
    return EmailParts(
        subject=render(content["subject"], variables).replace("\r", " ").replace("\n", " "),
        html=render(html, variables) if html else None,
        from_name=content.get("from_name"),
        reply_to=content.get("reply_to"),
        unsubscribe_url=render(link, variables).strip() if link else None,
        unsubscribe_mailto=content.get("unsubscribe_mailto"),
        configuration_set=campaign.get("email_configuration_set"),
    )


def _not_sendable(target: Target, attempt: int, error: str) -> int:
    """The attempt fails before any send: its message cannot be made (nothing retries that)."""
    deliveries.record_outcome(
        target.pk, target.rid, attempt, DeliveryState.FAILED, provider_message_id=None, error=error
    )
    return 0


def _send_once(channel: Channel, message: OutgoingMessage) -> SendOutcome:
    try:
        return channel.send(message)
    except Exception as exc:  # an adapter's bug must not turn a send that happened into a resend
        logger.exception("channel raised", extra={"to": message.to})
        return SendOutcome.ambiguous(f"the channel failed while sending: {type(exc).__name__}")
