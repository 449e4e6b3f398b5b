"""A recipient's state within one campaign, and the buckets the counters report."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DeliveryState(StrEnum):
    QUEUED = "queued"  # waiting: a scheduled retry, or parked while the campaign was paused
    IN_FLIGHT = "in_flight"  # claimed by a dispatch worker, outcome not yet recorded
    SUCCEEDED = "succeeded"  # the provider accepted the message
    FAILED = "failed"  # a permanent failure, or a transient one that exhausted its retries


TERMINAL_STATES = frozenset({DeliveryState.SUCCEEDED, DeliveryState.FAILED})
# Counters kept on the campaign; `queued` is derived as total minus these, so the
# invariant total = queued + in_flight + succeeded + failed holds at every read.
COUNTED_STATES = (DeliveryState.IN_FLIGHT, DeliveryState.SUCCEEDED, DeliveryState.FAILED)


def state_deltas(old: str | None, new: str | None) -> dict[str, int]:
    """How one recipient's change of state moves the counted buckets."""
    deltas: dict[str, int] = {}
    if old == new:
        return deltas
    if old in {s.value for s in COUNTED_STATES}:
        deltas[str(old)] = deltas.get(str(old), 0) - 1
    if new in {s.value for s in COUNTED_STATES}:
        deltas[str(new)] = deltas.get(str(new), 0) + 1
    return deltas


class OutcomeKind(StrEnum):
    ACCEPTED = "accepted"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class SendOutcome:
    """What a channel reports for one send attempt."""

    kind: OutcomeKind
    provider_message_id: str | None = None
    error: str | None = None
    retry_after_seconds: float | None = None

    @classmethod
    def accepted(cls, provider_message_id: str) -> SendOutcome:
        return cls(OutcomeKind.ACCEPTED, provider_message_id=provider_message_id)

    @classmethod
    def transient(cls, error: str, retry_after_seconds: float | None = None) -> SendOutcome:
        return cls(OutcomeKind.TRANSIENT, error=error, retry_after_seconds=retry_after_seconds)

    @classmethod
    def permanent(cls, error: str) -> SendOutcome:
        return cls(OutcomeKind.PERMANENT, error=error)
