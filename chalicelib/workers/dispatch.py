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


def dispatch_chunk(chunk: dict[str, Any], *, message_id: str) -> int:
    """Process one chunk; returns how many sends were attempted."""
    pk = chunk["campaign"]
    campaign = campaigns.get_campaign_by_pk(pk)
    if campaign is None:
        return 0
    status = CampaignStatus(campaign["status"])
    if status != CampaignStatus.RUNNING:
        if status in (CampaignStatus.PAUSED, CampaignStatus.DRAFT):
            _park(pk, chunk["recipients"])
        return 0
    policy = RetryPolicy.model_validate(campaign["retry_policy"]) if campaign.get("retry_policy") else NO_RETRIES
    sent = 0
    for recipient in chunk["recipients"]:
        sent += _dispatch_one(campaign, policy, recipient, message_id)
    return sent


def _park(pk: str, recipients: list[dict[str, Any]]) -> None:
    """Released while the campaign was paused: keep them queued, due as soon as it resumes."""
    now = time.time()
    for r in recipients:
        if r["fresh"]:
            deliveries.park_unsent(pk, r["phone"], r.get("params", {}))
        else:
            deliveries.lease_due(pk, r["phone"], int(r["previous_attempt"]), now)


def _dispatch_one(campaign: dict[str, Any], policy: RetryPolicy, recipient: dict[str, Any], message_id: str) -> int:
    pk, phone, params = campaign["pk"], recipient["phone"], recipient.get("params", {})
    previous = int(recipient["previous_attempt"])
    if recipient["fresh"]:
        claimed = deliveries.claim_first(pk, phone, params, message_id)
    else:
        claimed = deliveries.claim_queued(pk, phone, previous, message_id)
    attempt = previous + 1
    if not claimed:
        current = deliveries.get_delivery(pk, phone)
        resuming = (
            current is not None
            and current["state"] == DeliveryState.IN_FLIGHT
            and current.get("claimed_by") == message_id
        )
        if not resuming:
            return 0  # done already, or another message holds it
        attempt = int(current["attempt"])  # type: ignore[index]
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
