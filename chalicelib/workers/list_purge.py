"""List purge jobs: remove the items a clear or a delete left behind (queued by the API, O(1) there)."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.operations.list_purge import purge_list
from chalicelib.workers.export import time_left


def handle_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    def run(record: SQSRecord) -> None:
        job = json.loads(record.body)
        purge_list(job["account"], job["list"], job.get("below"), job.get("after"), time_left(context))

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(process_partial_response(event=event, record_handler=run, processor=processor, context=context))
