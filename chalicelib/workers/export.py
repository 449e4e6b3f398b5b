"""Export jobs from the export queue: each writes (part of) one CSV; a job that keeps failing is marked
failed on its last delivery instead of waiting in the dead-letter queue."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.observability import logger
from chalicelib.operations import export

# The export queue's maxReceiveCount (infra/template.json): the last delivery gives up cleanly.
LAST_RECEIVE = 5
# Without a Lambda context (tests, scripts) a job may take this long.
UNBOUNDED_SECONDS = 900.0


def time_left(context: Any) -> Callable[[], float]:
    """Seconds left in the invocation."""
    if context is None:
        return lambda: UNBOUNDED_SECONDS
    return lambda: float(context.get_remaining_time_in_millis()) / 1000


def handle_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    def run(record: SQSRecord) -> None:
        job = json.loads(record.body)
        try:
            export.run_export(job["account"], job["export"], time_left(context))
        except Exception as exc:
            if int(record.attributes.approximate_receive_count) < LAST_RECEIVE:
                raise
            logger.exception("export failed on its last attempt", extra={"export": job["export"]})
            export.give_up(job["account"], job["export"], f"the export failed: {type(exc).__name__}")

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(process_partial_response(event=event, record_handler=run, processor=processor, context=context))
