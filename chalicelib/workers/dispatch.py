"""Dispatch: claims each recipient of a chunk, renders its message, sends it, records the outcome.

Claims are conditional writes, so a duplicate SQS delivery or a chunk released twice sends nothing
twice. An unexpected error fails only its SQS record (partial batch response); SQS redelivers it and
the recipient this very message had claimed is finished with the same idempotency key.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.channels import OutgoingMessage, channel_for
from chalicelib.domain.campaign import CampaignStatus
from chalicelib.domain.delivery import DeliveryState, OutcomeKind, SendOutcome
from chalicelib.domain.retry import NO_RETRIES, RetryPolicy
from chalicelib.domain.template import TemplateError, render
from chalicelib.observability import logger
from chalicelib.store import campaigns, deliveries, keys


def handle_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # One processor per invocation: it holds per-batch state, and the local runner calls concurrently.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    answer = process_partial_response(event=event, record_handler=_record, processor=processor, context=context)
    return dict(answer)


def _record(record: SQSRecord) -> None:
    dispatch_chunk(json.loads(record.body), message_id=record.message_id)


# Statuses whose released recipients are kept for later; a cancelled campaign's are dropped.
HOLDING = frozenset({CampaignStatus.PAUSED, CampaignStatus.DRAFT})


class ChunkIncomplete(RuntimeError):
    """Some recipients of a chunk hit an unexpected error; SQS redelivers it and the rest are skipped."""


def dispatch_chunk(chunk: dict[str, Any], *, message_id: str) -> int:
    """Process one chunk; returns how many sends were attempted."""
    pk = chunk["campaign"]
    campaign = campaigns.get_campaign_by_pk(pk)
    if campaign is None:
        return 0
    status = CampaignStatus(campaign["status"])
    policy = RetryPolicy.model_validate(campaign["retry_policy"]) if campaign.get("retry_policy") else NO_RETRIES
    sent, failures = 0, 0
    for recipient in chunk["recipients"]:
        try:  # one recipient's error must not hold back the others of its chunk
            if status == CampaignStatus.RUNNING:
                sent += _dispatch_one(campaign, policy, recipient, message_id)
            else:
                sent += _hold(campaign, policy, recipient, message_id, park=status in HOLDING)
        except Exception:
            logger.exception("dispatch failed", extra={"campaign": pk, "phone": recipient.get("phone")})
            failures += 1
    if failures:
        raise ChunkIncomplete(f"{failures} of {len(chunk['recipients'])} recipients failed; SQS will redeliver")
    return sent


def _dispatch_one(campaign: dict[str, Any], policy: RetryPolicy, recipient: dict[str, Any], message_id: str) -> int:
    pk, phone, params = campaign["pk"], recipient["phone"], recipient.get("params", {})
    previous = int(recipient["previous_attempt"])
    if recipient["fresh"]:
        claimed = deliveries.claim_first(pk, phone, params, message_id)
    else:
        claimed = deliveries.claim_queued(pk, phone, previous, message_id)
    attempt = previous + 1 if claimed else _own_claim(pk, phone, message_id)
    if attempt is None:
        return 0  # done already, or another message holds it
    return _send(campaign, policy, phone, params, attempt)


def _hold(
    campaign: dict[str, Any], policy: RetryPolicy, recipient: dict[str, Any], message_id: str, *, park: bool
) -> int:
    """The campaign is not running: keep released recipients queued, due as soon as it resumes (when
    paused), and finish one this very message had claimed before a crash, so it cannot stay in flight."""
    pk, phone, params = campaign["pk"], recipient["phone"], recipient.get("params", {})
    if park:
        held = (
            deliveries.park_unsent(pk, phone, params)
            if recipient["fresh"]
            else deliveries.lease_due(pk, phone, int(recipient["previous_attempt"]), time.time())
        )
        if held:
            return 0
    attempt = _own_claim(pk, phone, message_id)
    return 0 if attempt is None else _send(campaign, policy, phone, params, attempt)


def _own_claim(pk: str, phone: str, message_id: str) -> int | None:
    """The attempt this message claimed and did not finish (a redelivery after a crash), if any."""
    current = deliveries.get_delivery(pk, phone)
    if current and current["state"] == DeliveryState.IN_FLIGHT and current.get("claimed_by") == message_id:
        return int(current["attempt"])
    return None


def _send(campaign: dict[str, Any], policy: RetryPolicy, phone: str, params: dict[str, Any], attempt: int) -> int:
    pk = campaign["pk"]
    try:
        text = render(campaign["template"], {**params, "phone": phone})
    except TemplateError as exc:
        deliveries.record_outcome(
            pk, phone, attempt, DeliveryState.FAILED, provider_message_id=None, error=f"template: {exc}"
        )
        return 0
    _, campaign_id = keys.split_campaign_pk(pk)
    outcome = channel_for(campaign["channel"]).send(
        OutgoingMessage(
            channel=campaign["channel"],
            to=phone,
            sender=campaign["sender"],
            text=text,
            idempotency_key=f"{campaign_id}:{phone}:{attempt}",
        )
    )
    _record_outcome(pk, phone, attempt, policy, outcome)
    return 1


def _record_outcome(pk: str, phone: str, attempt: int, policy: RetryPolicy, outcome: SendOutcome) -> None:
    if outcome.kind == OutcomeKind.ACCEPTED:
        deliveries.record_outcome(
            pk, phone, attempt, DeliveryState.SUCCEEDED, provider_message_id=outcome.provider_message_id, error=None
        )
    elif outcome.kind == OutcomeKind.TRANSIENT and policy.allows_attempt_after(attempt):
        due = time.time() + policy.delay_after(attempt, outcome.retry_after_seconds)
        deliveries.schedule_retry(pk, phone, attempt, due, outcome.error or "transient failure")
    else:
        if outcome.kind == OutcomeKind.TRANSIENT:
            logger.info("retries exhausted", extra={"campaign": pk, "attempt": attempt})
        deliveries.record_outcome(
            pk, phone, attempt, DeliveryState.FAILED, provider_message_id=None, error=outcome.error
        )
