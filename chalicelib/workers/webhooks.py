"""Webhook deliveries to the customer: each SQS message is one attempt (operations/webhooks.py); a failed
attempt queues its own retry, so the message itself succeeds unless the worker failed."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.operations import webhooks


def handle_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    def run(record: SQSRecord) -> None:
        webhooks.deliver(json.loads(record.body))

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(process_partial_response(event=event, record_handler=run, processor=processor, context=context))
