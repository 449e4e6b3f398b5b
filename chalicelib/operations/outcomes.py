"""An attempt's outcome, recorded: succeeded, unknown, tried again (a retry, a failover), failed, or held for
the account (the campaign pauses). Dispatch records what a send answered; a call's events record how the
call ended (operations/calls.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from chalicelib.domain import segments
from chalicelib.domain.campaign import CampaignStatus
from chalicelib.domain.delivery import DeliveryState, OutcomeKind, OutcomeReason, SendOutcome
from chalicelib.domain.errors import Conflict
from chalicelib.domain.recipients import Recipient
from chalicelib.domain.retry import RetryPolicy
from chalicelib.observability import logger
from chalicelib.settings import get_settings
from chalicelib.store import campaigns, deliveries, pace

# A throttled send is tried again after the provider's Retry-After, or this long when it gives none.
THROTTLED_WAIT_SECONDS = 1.0
# How late dispatch may send after its status check (dispatch.SendClock): sends started before a refusal
# was seen are held back for that long past the status recheck.
SEND_SLIP_SECONDS = 0.5


@dataclass(frozen=True)
class Target:
    pk: str  # the delivery's partition key (its bucket)
    recipient: Recipient
    previous_attempt: int
    fresh: bool
    # Where a retry or a failover goes: the destination's index and its try number (None: the first).
    destination_index: int | None = None
    destination_try: int = 1
    # 1: this attempt goes on the campaign's fallback channel (decision 39); 0: its own (or its segment's).
    channel_step: int = 0
    # An `every` campaign's message: the segment's index it is for, or segments.NO_SLOT (decision 49); None in a
    # `first` campaign, whose one delivery per recipient is keyed by the recipient's id.
    slot: str | None = None

    @property
    def rid(self) -> str:
        """The delivery's key: the recipient's id, with its slot in an `every` campaign."""
        return segments.delivery_key(self.recipient.id, self.slot)

    @property
    def attempt(self) -> int:
        return self.previous_attempt + 1

    @property
    def data(self) -> dict[str, Any]:
        """What a parked or retried delivery keeps of the recipient (its id is the delivery's key)."""
        kept = self.recipient.to_dict()
        del kept["id"]
        if self.slot is not None:  # a retry or parked message of an `every` campaign comes back as itself
            kept["slot"] = self.slot
        return kept


def recipient_of(entry: dict[str, Any]) -> Recipient:
    """A chunk entry's recipient: its `id` is the delivery's key, the recipient's id with its `slot` if any."""
    slot = entry.get("slot")
    if slot is None:
        return Recipient.from_dict(entry)
    rid = str(entry["id"]).removesuffix(segments.SLOT_SEPARATOR + str(slot))
    return Recipient.from_dict({**entry, "id": rid})


def target_of(campaign: dict[str, Any], entry: dict[str, Any]) -> Target:
    recipient = recipient_of(entry)
    slot = entry.get("slot")
    return Target(
        pk=deliveries.pk_for(campaign["pk"], int(campaign.get("buckets", 1)), str(entry["id"])),
        recipient=recipient,
        previous_attempt=int(entry["previous_attempt"]),
        fresh=bool(entry["fresh"]),
        destination_index=entry.get("destination_index"),
        destination_try=int(entry.get("destination_try", 1)),
        channel_step=int(entry.get("channel_step", 0)),
        slot=None if slot is None else str(slot),
    )


@dataclass(frozen=True)
class Route:
    """One try: the destination (its index among the recipient's destinations, its address) and the try
    number on it."""

    index: int
    address: str
    tries: int

    @property
    def destination(self) -> tuple[int, str]:
        return self.index, self.address

    @classmethod
    def of(cls, delivery: dict[str, Any]) -> Route:
        """The route of a delivery's claimed attempt."""
        return cls(int(delivery["destination_index"]), delivery["destination"], int(delivery.get("destination_try", 1)))


def attempt_record(
    campaign: dict[str, Any],
    attempt: int,
    route: Route,
    outcome: DeliveryState | str,
    reason: OutcomeReason | None,
    provider_message_id: str | None,
    error: str | None,
    started: float | None = None,
) -> dict[str, Any]:
    """What the delivery's history keeps of one attempt (what it does not know is left out, not null)."""
    now = time.time()
    record = {
        "attempt": attempt,
        "destination_index": route.index,
        "destination": route.address,
        "try": route.tries,
        "channel": campaign["channel"],
        "provider_message_id": provider_message_id,
        "outcome": str(outcome),
        "reason": reason.value if reason else None,
        "error": error,
        "started_at": started if started is not None else now,
        "ended_at": now,
    }
    return {name: value for name, value in record.items() if value is not None}


class AccountRefusals:
    """Campaigns whose account the provider refused, as this process saw it: the sends it had already
    started (past their status check, waiting their turn) do not go to the provider, until the status it
    reads again says paused (or running: resumed)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[float, str]] = {}  # campaign -> when, and the provider's reason

    def note(self, campaign_pk: str, reason: str) -> None:
        """A refusal seen now; the first reason is kept while it is fresh (a send held back after it says
        only "not sent", and must not replace the provider's reason the campaign pauses with)."""
        if not self.refused(campaign_pk):
            self._seen[campaign_pk] = (time.monotonic(), reason)

    def reason(self, campaign_pk: str) -> str | None:
        return self._seen[campaign_pk][1] if self.refused(campaign_pk) else None

    def refused(self, campaign_pk: str) -> bool:
        seen = self._seen.get(campaign_pk)
        if seen is None:
            return False
        if time.monotonic() - seen[0] < get_settings().status_recheck_seconds + SEND_SLIP_SECONDS:
            return True
        self._seen.pop(campaign_pk, None)
        return False


ACCOUNT_REFUSED = AccountRefusals()


class Throttles:
    """Campaigns the provider throttled, as this process saw it: until when their sends hold off."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def note(self, campaign_pk: str, until: float) -> None:
        self._until[campaign_pk] = max(until, self._until.get(campaign_pk, 0.0))

    def until(self, campaign_pk: str) -> float:
        return self._until.get(campaign_pk, 0.0)


THROTTLED = Throttles()


def slow_down(campaign: dict[str, Any], wait: float) -> None:
    """A send was throttled (429): the campaign's sends hold off for `wait`, this process's at once and every
    worker's next chunk (its pacing ledger starts no span before then): the pace slows."""
    until = time.time() + wait
    THROTTLED.note(campaign["pk"], until)
    try:
        pace.hold_off(campaign["pk"], until)
    except Exception:  # the retry is recorded all the same; the next 429 tries again
        logger.exception("could not hold the campaign's pace off", extra={"campaign": campaign["pk"]})


def pause_for_account(campaign: dict[str, Any], error: str) -> None:
    """The provider refused the account: pause the campaign with the reason (once, whichever send saw it
    first), instead of failing every recipient left one call each. Resuming is the customer's call."""
    ACCOUNT_REFUSED.note(campaign["pk"], error)
    reason = ACCOUNT_REFUSED.reason(campaign["pk"]) or error  # the provider's, not a held-back send's
    try:
        campaigns.change_status(
            campaign["pk"], CampaignStatus.RUNNING, CampaignStatus.PAUSED, sets={"pause_reason": reason[:500]}
        )
    except Conflict:  # paused already (by another send, or by the customer), or finished
        return
    logger.warning("campaign paused: the provider refused the account", extra={"campaign": campaign["pk"]})


def record_outcome(
    campaign: dict[str, Any],
    target: Target,
    attempt: int,
    route: Route,
    policy: RetryPolicy,
    outcome: SendOutcome,
    started: float,
) -> None:
    """Close the attempt: succeeded, unknown, tried again on the same destination (a retry), on the next
    destination (a failover), or failed with this last reason."""
    pk, rid = target.pk, target.rid

    def record(result: DeliveryState | str) -> dict[str, Any]:
        return attempt_record(
            campaign, attempt, route, result, outcome.reason, outcome.provider_message_id, outcome.error, started
        )

    if outcome.kind == OutcomeKind.ACCOUNT or outcome.reason == OutcomeReason.THROTTLED:
        # Not the recipient's failure, whatever the retry policy: the same try again (not counted), at once
        # for the account's (the campaign pauses now, and sends it on resume), after the provider's wait
        # (or a second) when throttled: the pace slows.
        if outcome.kind == OutcomeKind.ACCOUNT:  # first, so sends that start meanwhile are held back
            ACCOUNT_REFUSED.note(campaign["pk"], outcome.error or "the provider refused the account")
        wait = 0.0 if outcome.kind == OutcomeKind.ACCOUNT else (outcome.retry_after_seconds or THROTTLED_WAIT_SECONDS)
        result = "account" if outcome.kind == OutcomeKind.ACCOUNT else "throttled"
        deliveries.schedule_retry(
            pk,
            rid,
            attempt,
            time.time() + wait,
            outcome.error or result,
            target.data,
            next_destination=(route.index, route.tries),
            record=record(result),
            channel_step=target.channel_step,
        )
        if outcome.kind == OutcomeKind.ACCOUNT:
            pause_for_account(campaign, outcome.error or "the provider refused the account")
        else:
            slow_down(campaign, wait)
        return
    if outcome.kind == OutcomeKind.ACCEPTED:
        state = DeliveryState.SUCCEEDED
    elif outcome.kind == OutcomeKind.AMBIGUOUS:
        state = DeliveryState.UNKNOWN
    else:
        state = DeliveryState.FAILED
        error = outcome.error or (outcome.reason or "failure")
        if outcome.kind == OutcomeKind.TRANSIENT and policy.retries(outcome.reason, route.tries):
            due = time.time() + policy.delay_after(route.tries, outcome.retry_after_seconds)
            next_try = (route.index, route.tries + 1)
            deliveries.schedule_retry(pk, rid, attempt, due, error, target.data, next_destination=next_try,
                                      record=record("retry"), channel_step=target.channel_step)  # fmt: skip
            return
        after = target.recipient.destination_after(campaign["channel"], route.index)
        if after is not None and policy.fails_over(outcome.reason):
            due = time.time() + (outcome.retry_after_seconds or 0)
            deliveries.schedule_retry(pk, rid, attempt, due, error, target.data, next_destination=(after[0], 1),
                                      record=record("failover"), channel_step=target.channel_step)  # fmt: skip
            return
        first = fallback_destination(campaign, target, outcome.reason.value if outcome.reason else None)
        if first is not None:  # the campaign's fallback channel: one more attempt there, at once
            deliveries.schedule_retry(pk, rid, attempt, time.time(), error, target.data, next_destination=(first, 1),
                                      record=record("fallback"), channel_step=1)  # fmt: skip
            return
        if outcome.kind == OutcomeKind.TRANSIENT:
            logger.info("tries exhausted", extra={"delivery": pk, "attempt": attempt})
    deliveries.record_outcome(
        pk,
        rid,
        attempt,
        state,
        provider_message_id=outcome.provider_message_id,
        error=outcome.error,
        reason=outcome.reason.value if outcome.reason else None,
    )


def fallback_destination(campaign: dict[str, Any], target: Target, reason: str | None) -> int | None:
    """Where the campaign's fallback sends a recipient its own channel did not reach for `reason` (the index
    of the recipient's first destination for the fallback's channel), or None: no fallback, not for this
    reason, already on it, or no address it sends to (decision 39)."""
    fallback = campaign.get("fallback")
    if not fallback or target.channel_step or reason not in (fallback.get("on") or []):
        return None
    first = target.recipient.destination_for(fallback["channel"])
    return first[0] if first else None
