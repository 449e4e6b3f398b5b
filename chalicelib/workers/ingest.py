"""Ingest: the ingest queue's consumer. Each message is an S3 object-created notification (or S3's test
event) or a continuation the worker queued itself; it calls operations.ingest for it.

An unexpected error fails the record (partial batch response): SQS redelivers it after the visibility
timeout, the ingest resumes from the upload's checkpoint, and after 5 receipts it is dead-lettered.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.observability import logger
from chalicelib.operations import ingest


def handle_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def record_handler(record: SQSRecord) -> None:
        outcomes = ingest.handle_message(json.loads(record.body), context)
        logger.info("ingest message handled", extra={"message_id": record.message_id, "outcomes": outcomes})

    return dict(process_partial_response(event=event, record_handler=record_handler, processor=processor))
