"""Erasure jobs (decision 42): erase a person from an account, step by step (queued by the API, O(1) there)."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.operations.erasure import run
from chalicelib.workers.export import time_left


def handle_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    def one(record: SQSRecord) -> None:
        run(json.loads(record.body), time_left(context))

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(process_partial_response(event=event, record_handler=one, processor=processor, context=context))
