"""The dispatch dead-letter queue's consumer: every recipient of a dead-lettered chunk gets a final state.

A chunk lands here after failing maxReceiveCount times. Its recipients that were never claimed are
failed with reason `dead_lettered`; one this chunk had claimed and left in flight may have been sent,
so it is recorded `unknown` (never resent). Without this, the campaign would wait for them for ever.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.domain.delivery import DeliveryState
from chalicelib.observability import logger
from chalicelib.store import campaigns, deliveries

REASON = "dead_lettered: dispatch failed on this recipient's chunk too many times"


def settle_chunk(chunk: dict[str, Any]) -> int:
    """Give every recipient of the chunk a final state; returns how many this call settled."""
    campaign = campaigns.get_campaign_by_pk(chunk["campaign"])
    if campaign is None:
        return 0
    token = str(chunk.get("claim", ""))
    settled = 0
    for recipient in chunk["recipients"]:
        rid = recipient["id"]
        pk = deliveries.pk_for(campaign["pk"], int(campaign.get("buckets", 1)), rid)
        previous = int(recipient["previous_attempt"])
        if recipient["fresh"]:
            written = deliveries.fail_unsent(pk, rid, REASON, recipient.get("slot"))
        else:
            written = deliveries.fail_queued(pk, rid, previous, REASON)
        if written.ok:
            settled += 1
            continue
        current = written.current
        if (
            current is not None
            and current["state"] == DeliveryState.IN_FLIGHT
            and current.get("claimed_by") == token
            and int(current["attempt"]) == previous + 1
            and deliveries.RECEIPT_DUE not in current  # sent and waiting for its receipt: not this chunk's to end
        ):
            deliveries.record_outcome(
                pk, rid, previous + 1, DeliveryState.UNKNOWN, provider_message_id=None, error=REASON
            )
            settled += 1
    logger.warning("dead-lettered chunk settled", extra={"campaign": campaign["pk"], "settled": settled})
    return settled


def _record(record: SQSRecord) -> None:
    settle_chunk(json.loads(record.body))


def handle_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(process_partial_response(event=event, record_handler=_record, processor=processor, context=context))
