"""A recipient's state within one campaign, and the buckets the counters report."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class DeliveryState(StrEnum):
    QUEUED = "queued"  # waiting: a scheduled retry, or parked while the campaign was paused
    IN_FLIGHT = "in_flight"  # claimed by a dispatch worker, outcome not yet recorded
    SUCCEEDED = "succeeded"  # the provider accepted the message
    FAILED = "failed"  # a permanent failure, or a transient one that exhausted its retries
    # The send may or may not have reached the provider (a crash or a timeout after sending), and the
    # channel cannot be asked again safely: recorded, counted and never resent.
    UNKNOWN = "unknown"
    # Not sent on purpose; `skip_reason` says why (excluded: the recipient is in an exclusion list).
    SKIPPED = "skipped"
    # Not sent because the campaign expired (`expires_at`) before it was.
    EXPIRED = "expired"


class SkipReason(StrEnum):
    EXCLUDED = "excluded"  # in one of the campaign's exclusion lists
    CAPPED = "capped"  # its destination had its frequency cap's worth of messages in the period
    HELD_OUT = "held_out"  # in the campaign's holdout group (A/B): not sent on purpose, for comparison
    NO_SEGMENT = "no_segment"  # matched none of the campaign's segments, which skips such recipients
    OPTED_OUT = "opted_out"  # its destination is suppressed for the channel (a STOP, or the API)
    NO_SESSION = "no_session"  # a WhatsApp session message: the person has not written in the last 24 hours


TERMINAL_STATES = frozenset(
    {DeliveryState.SUCCEEDED, DeliveryState.FAILED, DeliveryState.UNKNOWN, DeliveryState.SKIPPED, DeliveryState.EXPIRED}
)
# The counter each delivery state is kept in on the campaign. `waiting` counts queued deliveries (a
# retry or a parked recipient); the API's `queued` is total minus in_flight and the terminal ones, so
# total = queued + in_flight + succeeded + failed + unknown + skipped + expired holds at every read.
COUNTER_OF_STATE = {
    DeliveryState.QUEUED.value: "waiting",
    DeliveryState.IN_FLIGHT.value: "in_flight",
    DeliveryState.SUCCEEDED.value: "succeeded",
    DeliveryState.FAILED.value: "failed",
    DeliveryState.UNKNOWN.value: "unknown",
    DeliveryState.SKIPPED.value: "skipped",
    DeliveryState.EXPIRED.value: "expired",
}
COUNTERS = tuple(COUNTER_OF_STATE.values())
FINISHED_COUNTERS = ("succeeded", "failed", "unknown", "skipped", "expired")


RECEIPT_PREFIX = "receipts."  # the receipt counters (domain/responses.py): beside the states, not in total
# Tracked links and conversions (decision 43): beside the states too. `clicked` and `converted` count
# recipients, `clicks` and `conversions` every one.
ENGAGEMENT_PREFIX = "engagement."
ENGAGEMENT_COUNTERS = ("clicked", "clicks", "converted", "conversions", "replied")
# The delivery's fields they are counted from (`last_reply_at`: it replied at least once; decision 45).
ENGAGED_FIELDS = ("clicks", "conversions", "last_reply_at")
VARIANT_PREFIX = "v."
SEGMENT_PREFIX = "g."  # a segment's counters: g.<segment>.<counter>
# `skipped` broken down by why: one campaign attribute per reason, from the stream like the others.
SKIP_PREFIX = "skipped."


def skip_counter(reason: str) -> str:
    return f"{SKIP_PREFIX}{reason}"


def counter_names(item: dict[str, Any]) -> list[str]:
    """The state counters and the skip reasons' counters an item (campaign or recount) carries."""
    counted = (SKIP_PREFIX, RECEIPT_PREFIX, ENGAGEMENT_PREFIX)
    return [*COUNTERS, *sorted(name for name in item if name.startswith(counted))]


def variant_counter(variant: str, counter: str) -> str:
    """The campaign attribute that counts `counter` for one A/B variant."""
    return f"{VARIANT_PREFIX}{variant}.{counter}"


def segment_counter(segment: str, counter: str) -> str:
    """The campaign attribute that counts `counter` for one segment."""
    return f"{SEGMENT_PREFIX}{segment}.{counter}"


def last_change(item: dict[str, Any]) -> float:
    """When a delivery last changed: the outcome write sets `ended_at`, not `updated_at` (a shorter write)."""
    return max(float(item.get("updated_at") or 0), float(item.get("ended_at") or 0))


def engagement_counts(item: dict[str, Any]) -> dict[str, int]:
    """What one delivery (its `clicks`, `conversions` and `last_reply_at`) counts in the engagement counters."""
    clicks, conversions = int(item.get("clicks") or 0), int(item.get("conversions") or 0)
    return {
        "clicked": int(clicks > 0),
        "clicks": clicks,
        "converted": int(conversions > 0),
        "conversions": conversions,
        "replied": int(bool(item.get("last_reply_at"))),
    }


def engagement_deltas(old: dict[str, Any], new: dict[str, Any]) -> dict[str, int]:
    """How a delivery changing from `old` to `new` moves the engagement counters (zeros left out)."""
    before, after = engagement_counts(old), engagement_counts(new)
    return {name: after[name] - before[name] for name in ENGAGEMENT_COUNTERS if after[name] != before[name]}


def state_deltas(old: str | None, new: str | None) -> dict[str, int]:
    """How one recipient's change of state moves the counters."""
    deltas: dict[str, int] = {}
    if old == new:
        return deltas
    if old in COUNTER_OF_STATE:
        deltas[COUNTER_OF_STATE[old]] = -1
    if new in COUNTER_OF_STATE:
        deltas[COUNTER_OF_STATE[new]] = deltas.get(COUNTER_OF_STATE[new], 0) + 1
    return deltas


class OutcomeReason(StrEnum):
    """Why an attempt did not succeed, as the retry policy sees it."""

    THROTTLED = "throttled"  # the provider asked to slow down (429)
    PROVIDER_ERROR = "provider_error"  # the provider failed (5xx, 408, 425)
    UNREACHABLE = "unreachable"  # no connection was made: nothing was sent
    BUSY = "busy"  # a call: the line was busy
    NO_ANSWER = "no_answer"  # a call: nobody answered
    MACHINE = "machine"  # a call: an answering machine answered (machine detection set to hang up)
    REJECTED = "rejected"  # the provider refused this message or destination for good (4xx)
    TIMEOUT = "timeout"  # no answer came back: it may have been sent (never retried blindly)
    ACCOUNT = "account"  # the provider refused the account (credentials, balance): the campaign pauses
    NO_SESSION = "no_session"  # WhatsApp refused free text outside the person's 24-hour window (1340)
    # Taken by the provider, but no delivered receipt came in time, or the receipt said undelivered (decision 48).
    NO_DELIVERY = "no_delivery"


class OutcomeKind(StrEnum):
    ACCEPTED = "accepted"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    # The request may have reached the provider but no answer came back (read timeout, dropped
    # connection): resent only through a channel that honours idempotency keys.
    AMBIGUOUS = "ambiguous"
    # The provider refused the sender's account, not this message (401, 402): nothing was sent, and no
    # other recipient can be sent either until the account is fixed.
    ACCOUNT = "account"


@dataclass(frozen=True)
class SendOutcome:
    """What a channel reports for one send attempt."""

    kind: OutcomeKind
    provider_message_id: str | None = None
    error: str | None = None
    retry_after_seconds: float | None = None
    reason: OutcomeReason | None = None  # None when accepted

    @classmethod
    def accepted(cls, provider_message_id: str | None) -> SendOutcome:
        return cls(OutcomeKind.ACCEPTED, provider_message_id=provider_message_id)

    @classmethod
    def transient(
        cls,
        error: str,
        retry_after_seconds: float | None = None,
        reason: OutcomeReason = OutcomeReason.PROVIDER_ERROR,
    ) -> SendOutcome:
        return cls(OutcomeKind.TRANSIENT, error=error, retry_after_seconds=retry_after_seconds, reason=reason)

    @classmethod
    def permanent(cls, error: str, reason: OutcomeReason = OutcomeReason.REJECTED) -> SendOutcome:
        return cls(OutcomeKind.PERMANENT, error=error, reason=reason)

    @classmethod
    def account(cls, error: str) -> SendOutcome:
        return cls(OutcomeKind.ACCOUNT, error=error, reason=OutcomeReason.ACCOUNT)

    @classmethod
    def ambiguous(cls, error: str) -> SendOutcome:
        return cls(OutcomeKind.AMBIGUOUS, error=error, reason=OutcomeReason.TIMEOUT)
