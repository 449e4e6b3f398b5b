"""Fallback when no delivery comes (decision 48): a send the provider took, on a campaign whose fallback is
`on: no_delivery`, waits `within_minutes` for its delivered (or read) receipt before the fallback's attempt.

- `await_receipt`: the provider took the message. The attempt stays `in_flight` with `receipt_due` and its
  deadline on the due index (`due_at`), the recipient's data kept for the fallback. A receipt that came
  before this write (the provider's callback can beat the send's answer) is acted on at once instead.
- A delivered or read receipt closes the attempt as succeeded in the receipt's own write (store
  `apply_receipt(awaited=True)`), off the due index; a rejected or undeliverable one makes it due now and
  `after_receipt` moves the recipient to the fallback at once.
- `sweep_one`: the release's tick finds a wait past its deadline on the due index (as it finds calls that
  never reported): the recipient goes to the fallback's channel, one attempt, queued due now.
- A receipt for the first attempt that comes after that changes nothing: the delivery has moved to the next
  attempt (or is queued for it), and the wait it would have ended is gone.
"""

from __future__ import annotations

import time
from typing import Any

from chalicelib.domain import segments
from chalicelib.domain.delivery import DeliveryState, OutcomeReason
from chalicelib.domain.models import RECEIPT_CHANNELS
from chalicelib.observability import logger
from chalicelib.operations import outcomes
from chalicelib.operations.outcomes import Route, Target
from chalicelib.store import deliveries

# Seconds in one of `within_minutes`' minutes (a test plays minutes as seconds).
MINUTE_SECONDS = 60
UNDELIVERED = frozenset({"rejected", "undeliverable"})
DELIVERED = frozenset({"delivered", "read"})
REASON = OutcomeReason.NO_DELIVERY.value


def used_by(campaign: dict[str, Any]) -> bool:
    """Whether the campaign's fallback waits for receipts."""
    return REASON in ((campaign.get("fallback") or {}).get("on") or [])


def wait_seconds(campaign: dict[str, Any], target: Target) -> float | None:
    """How long this accepted attempt waits for its receipt, or None: no wait (no such fallback, already on
    the fallback's channel, a channel without receipts, or no address the fallback could send to)."""
    fallback = campaign.get("fallback") or {}
    if target.channel_step or not used_by(campaign) or campaign["channel"] not in RECEIPT_CHANNELS:
        return None
    if target.recipient.destination_for(str(fallback["channel"])) is None:
        return None
    return float(int(fallback.get("within_minutes") or 0) * MINUTE_SECONDS) or None


def await_receipt(
    campaign: dict[str, Any],
    target: Target,
    attempt: int,
    route: Route,
    provider_message_id: str | None,
    started: float,
    wait: float,
) -> None:
    """Keep the accepted attempt in flight until its receipt or its deadline."""
    pk, rid = target.pk, target.rid
    written = deliveries.await_receipt(pk, rid, attempt, time.time() + wait, target.data, provider_message_id)
    if written.ok:
        return
    current = written.current
    if (
        current is not None
        and current.get("state") == DeliveryState.IN_FLIGHT
        and int(current.get("attempt", 0)) == attempt
        and current.get("receipt") in UNDELIVERED
    ):  # its receipt came first, and said it was not delivered: the fallback now
        error = f"{REASON}: the receipt said {current['receipt']}" + _detail(current)
        _fall_back(campaign, target, attempt, route, provider_message_id, started, error)
        return
    # Delivered before the send's answer was recorded (or ended by a duplicate chunk meanwhile): as any send.
    deliveries.record_outcome(
        pk, rid, attempt, DeliveryState.SUCCEEDED, provider_message_id=provider_message_id, error=None
    )


def after_receipt(campaign: dict[str, Any], delivery: dict[str, Any]) -> bool:
    """A rejected or undeliverable receipt ended the wait of `delivery` (as its receipt write left it): the
    fallback goes now. False when it had moved on meanwhile."""
    error = f"{REASON}: the receipt said {delivery.get('receipt')}" + _detail(delivery)
    return _from_delivery(campaign, delivery, error)


def sweep_one(campaign: dict[str, Any], due: dict[str, Any], now: float) -> bool:
    """A delivery found on the due index past its wait's deadline: to the fallback. False when it had ended
    (its receipt came after the index was read)."""
    minutes = int((campaign.get("fallback") or {}).get("within_minutes") or 0)
    return _from_delivery(campaign, due, f"{REASON}: no delivered receipt within {minutes} minutes")


def settle(pk: str, due: dict[str, Any]) -> bool:
    """The campaign expired while the delivery waited: its send stands, succeeded, and no fallback goes."""
    error = "the campaign expired while the send waited for its receipt: no fallback"
    return deliveries.settle_wait(pk, str(due["sk"]), int(due["attempt"]), error).ok


def _from_delivery(campaign: dict[str, Any], delivery: dict[str, Any], error: str) -> bool:
    rid = str(delivery["sk"])
    attempt = int(delivery["attempt"])
    own = segments.effective(campaign, delivery.get("segment"), 0)
    entry = {**delivery.get("recipient", {}), "id": rid, "previous_attempt": attempt - 1, "fresh": False}
    target = outcomes.target_of(own, entry)
    started = float(delivery.get("updated_at") or time.time())
    return _fall_back(own, target, attempt, Route.of(delivery), delivery.get("provider_message_id"), started, error)


def _fall_back(
    campaign: dict[str, Any],
    target: Target,
    attempt: int,
    route: Route,
    provider_message_id: str | None,
    started: float,
    error: str,
) -> bool:
    """Close the waiting attempt and queue the fallback's, due now (its receipt rank cleared, so the fallback's
    own receipts apply; the receipt it had stays counted until one of them replaces it)."""
    fallback = campaign.get("fallback") or {}
    first = target.recipient.destination_for(str(fallback.get("channel")))
    if first is None:  # cannot happen (the wait was only taken with an address for it): the send stands
        return deliveries.settle_wait(target.pk, target.rid, attempt, error).ok
    reason = OutcomeReason.NO_DELIVERY
    record = outcomes.attempt_record(campaign, attempt, route, "fallback", reason, provider_message_id, error, started)
    moved = deliveries.schedule_retry(
        target.pk,
        target.rid,
        attempt,
        time.time(),
        error,
        target.data,
        next_destination=(first[0], 1),
        record=record,
        channel_step=1,
        removes=(deliveries.RECEIPT_DUE, "receipt_rank"),
    )
    if moved:
        logger.info("no delivery: to the fallback", extra={"delivery": target.pk, "attempt": attempt})
    return moved


def _detail(delivery: dict[str, Any]) -> str:
    return f" ({delivery['receipt_error']})" if delivery.get("receipt_error") else ""
