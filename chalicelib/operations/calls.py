"""Voice calls (decision 38): a call placed by dispatch stays in flight until its events say how it ended.

- `placed`: the provider took the call. The attempt keeps its uuid, the recipient's data (a retry needs it),
  the concurrency slot it holds (handed over from the dispatch invocation) and a deadline on the due index.
- `apply_event`: an event from the call's signed webhook. `started`, `ringing`, `answered`, `human` and (with
  machine detection set to continue) `machine` are noted; `completed` succeeds; `busy`, `timeout`,
  `unanswered`, `cancelled`, `rejected`, `failed` and (hang-up detection) `machine` go to the retry policy
  like any failed send. An event that ends the call gives its slot back.
- `sweep`: a call whose events never came by its deadline is `unknown` (never called again), its slot back.
"""

from __future__ import annotations

import time
from typing import Any

from chalicelib.domain import segments
from chalicelib.domain.delivery import DeliveryState, OutcomeReason, SendOutcome
from chalicelib.domain.errors import Conflict, NotFound, Unauthorized
from chalicelib.domain.responses import RECEIPT_RANK
from chalicelib.domain.retry import NO_RETRIES, RetryPolicy
from chalicelib.observability import logger
from chalicelib.operations import outcomes
from chalicelib.operations.outcomes import Route, Target
from chalicelib.store import campaigns, deliveries, keys, slots

# A call with no event past ringing_timer + length_timer + this is swept to `unknown`.
SWEEP_GRACE_SECONDS = 300

NOTED = frozenset({"started", "ringing", "answered", "human"})
FAILED_STATUSES: dict[str, tuple[OutcomeReason, bool]] = {  # status -> (reason, may be tried again)
    "busy": (OutcomeReason.BUSY, True),
    "timeout": (OutcomeReason.NO_ANSWER, True),
    "unanswered": (OutcomeReason.NO_ANSWER, True),
    "cancelled": (OutcomeReason.NO_ANSWER, True),
    "machine": (OutcomeReason.MACHINE, True),
    "failed": (OutcomeReason.PROVIDER_ERROR, True),
    "rejected": (OutcomeReason.REJECTED, False),
}
# What a `completed` event tells of the call, kept on the delivery (GET /v1/calls).
DETAILS = {
    "duration": "call_duration",
    "price": "call_price",
    "recording_url": "call_recording_url",
    "transcript_url": "call_transcript_url",
}


class EventTooEarly(Conflict):
    """The event came before dispatch recorded its call: the provider tries it again (409)."""


def holder(campaign_pk: str, rid: str, attempt: int) -> str:
    """Who holds a call's concurrency slot while it is under way."""
    return f"call:{keys.split_campaign_pk(campaign_pk)[1]}:{rid}:{attempt}"


def deadline(campaign: dict[str, Any], placed_at: float) -> float:
    voice = campaign.get("voice") or {}
    return placed_at + int(voice.get("ringing_timer", 60)) + int(voice.get("length_timer", 900)) + SWEEP_GRACE_SECONDS


def placed(
    campaign: dict[str, Any], target: Target, attempt: int, call_uuid: str, slot: tuple[Any, int] | None
) -> None:
    """The provider took the call: keep the attempt in flight for its events, with its slot (`slot`: the
    dispatch invocation's pool and the slot's index) passed on to the call."""
    now = time.time()
    until = deadline(campaign, now)
    index = None
    if slot is not None:
        pool, held = slot
        if pool.hand_over(held, holder(campaign["pk"], target.rid, attempt), until):
            index = held
    waiting = deliveries.await_call(target.pk, target.rid, attempt, call_uuid, until, target.data, index)
    if not waiting and index is not None:
        # Ended meanwhile (a duplicate chunk called it unknown): nothing will give the slot back but this.
        slots.give_back(campaign["pk"], index, holder(campaign["pk"], target.rid, attempt))


def apply_event(account_id: str, campaign_id: str, rid: str, attempt: int, event: dict[str, Any]) -> str:
    """Apply one call event; returns what became of it (`noted`, `ended`, `ignored`). EventTooEarly when the
    call is not recorded yet; Unauthorized when the event is of another call than this attempt's."""
    try:
        campaign = campaigns.get_campaign(account_id, campaign_id)
    except NotFound:
        return "ignored"  # deleted: nothing to record, and no reason for the provider to try again
    pk = deliveries.pk_for(campaign["pk"], int(campaign.get("buckets", 1)), rid)
    delivery = deliveries.get_delivery(pk, rid)
    if delivery is None or int(delivery.get("attempt", 0)) != attempt:
        return "ignored"
    if int(delivery.get("call_attempt", 0)) != attempt:
        if delivery["state"] == DeliveryState.IN_FLIGHT:
            raise EventTooEarly(detail="the call is not recorded yet; try the event again")
        return "ignored"
    # A segment's or the fallback's call has its own `voice`.
    campaign = segments.effective(campaign, delivery.get("segment"), int(delivery.get("channel_step", 0)))
    if str(event.get("uuid")) != delivery["call_uuid"]:
        raise Unauthorized(detail="the event is of another call than this URL's")
    status = str(event.get("status", ""))
    voice = campaign.get("voice") or {}
    hangs_up_on_machine = voice.get("machine_detection") == "hangup"
    if status in NOTED or (status == "machine" and not hangs_up_on_machine):
        fields: dict[str, Any] = {"call_status": status}
        if status == "machine":
            fields["call_answered_by"] = "machine"
        elif status == "human":
            fields["call_answered_by"] = "human"
        noted = deliveries.note_call(pk, rid, attempt, delivery["call_uuid"], fields, ended=False)
        return "noted" if noted.ok else "ignored"
    if status == "completed":
        outcome = SendOutcome.accepted(delivery["call_uuid"])
    elif status in FAILED_STATUSES:
        reason, may_retry = FAILED_STATUSES[status]
        error = f"call {status}" + (f": {event['detail']}" if event.get("detail") else "")
        outcome = SendOutcome.transient(error, reason=reason) if may_retry else SendOutcome.permanent(error, reason)
    else:
        return "ignored"  # a status Vonage may add later: not an end
    now = time.time()
    fields = {"call_status": status, "call_ended_at": now}
    if status == "completed":  # the call was answered and ran its course: the voice channel's receipt (decision 40)
        fields.update(receipt="delivered", receipt_rank=RECEIPT_RANK["delivered"], receipt_at=now, delivered_at=now)
    fields.update({name: event[key] for key, name in DETAILS.items() if event.get(key) is not None})
    return "ended" if _end(campaign, pk, delivery, attempt, fields, outcome) else "ignored"


LINK_FIELDS = {"recording": "call_recording_url", "transcription": "call_transcript_url"}


def apply_recording(account_id: str, campaign_id: str, rid: str, attempt: int, kind: str, url: str) -> str:
    """A recorded call's link (`kind` recording or transcription; decision 48), kept on its attempt whatever
    became of the call: `noted`, or `ignored` (another attempt's call, or the campaign gone). EventTooEarly
    when the call is not recorded yet."""
    try:
        campaign = campaigns.get_campaign(account_id, campaign_id)
    except NotFound:
        return "ignored"
    pk = deliveries.pk_for(campaign["pk"], int(campaign.get("buckets", 1)), rid)
    delivery = deliveries.get_delivery(pk, rid)
    if delivery is None:
        return "ignored"
    if int(delivery.get("call_attempt", 0)) != attempt:
        if delivery["state"] == DeliveryState.IN_FLIGHT and int(delivery.get("attempt", 0)) == attempt:
            raise EventTooEarly(detail="the call is not recorded yet; try the event again")
        return "ignored"
    return "noted" if deliveries.note_call_link(pk, rid, attempt, LINK_FIELDS[kind], url).ok else "ignored"


def sweep_one(campaign: dict[str, Any], pk: str, due: dict[str, Any], now: float) -> bool:
    """A call of the campaign found on the due index (`due`, the index's copy) past its deadline: `unknown`
    unless an event ended it meanwhile (read again: the index lags). True when it was swept."""
    delivery = deliveries.get_delivery(pk, due["sk"])
    if delivery is None or delivery.get("state") != DeliveryState.IN_FLIGHT or "call_uuid" not in delivery:
        return False
    waited = int(now - float(delivery.get("call_started_at", now)))
    own = segments.effective(campaign, delivery.get("segment"), int(delivery.get("channel_step", 0)))
    outcome = SendOutcome.ambiguous(f"no event ended the call within {waited} s: it may have been answered")
    swept = _end(own, pk, delivery, int(delivery["attempt"]), {"call_status": "unreported"}, outcome)
    if swept:
        logger.warning("a call without events swept to unknown", extra={"delivery": pk, "recipient": due["sk"]})
    return swept


def _end(
    campaign: dict[str, Any],
    pk: str,
    delivery: dict[str, Any],
    attempt: int,
    fields: dict[str, Any],
    outcome: SendOutcome,
) -> bool:
    """Close the call's attempt with `outcome` as a send's would be (retry, failover, final), and give its
    slot back; False when it had ended already (a second copy of the same event changes nothing)."""
    rid = str(delivery["sk"])
    noted = deliveries.note_call(pk, rid, attempt, delivery["call_uuid"], fields, ended=True)
    if noted.ok:
        policy = RetryPolicy.model_validate(campaign["retry_policy"]) if campaign.get("retry_policy") else NO_RETRIES
        entry = {**delivery["recipient"], "id": rid, "previous_attempt": attempt - 1, "fresh": False}
        target = outcomes.target_of(campaign, {**entry, "channel_step": int(delivery.get("channel_step", 0))})
        started = float(delivery.get("call_started_at") or delivery.get("updated_at") or time.time())
        outcomes.record_outcome(campaign, target, attempt, Route.of(delivery), policy, outcome, started)
    if delivery.get("call_slot") is not None:
        slots.give_back(campaign["pk"], int(delivery["call_slot"]), holder(campaign["pk"], rid, attempt))
    return noted.ok
