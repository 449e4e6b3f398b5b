"""Release: the scheduled tick fans out one release job per running campaign; each job releases one
campaign in its own invocation, so a large or slow campaign cannot starve the others. A campaign's start
schedule sends its job here too, carrying `start_at`: the campaign is started first; a recurring campaign's
schedule sends each occurrence, and a run of it is made and started (operations/runs.py)."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.operations import pacer, runs, start
from chalicelib.store import campaigns, queue

# The time a release keeps back from its deadline to send the chunks it read and save its progress.
SEND_AND_SAVE_MS = 10_000


def fan_out() -> int:
    """The tick: one release job per running campaign; returns how many were queued."""
    pks = campaigns.running_campaign_pks()
    queue.send_release_jobs(pks)
    return len(pks)


def handle_jobs(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Release jobs from the queue; a failed job comes back (partial batch failure), then to its DLQ."""

    def release(record: SQSRecord) -> None:
        # The lease outlives this invocation by a second at most: a release killed by its timeout or a
        # crash blocks its campaign no longer than that.
        remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else None

        def out_of_time() -> bool:  # kept back: enough to send what was read and save the cursor
            return context is not None and context.get_remaining_time_in_millis() < SEND_AND_SAVE_MS

        job = json.loads(record.body)
        if "occurrence" in job:  # sent by a recurring campaign's schedule: a run of it starts
            runs.occur(job["campaign"], str(job["occurrence"]))
            return
        if "start_at" in job:  # sent by a campaign's start schedule (EventBridge Scheduler)
            start.start_scheduled(job["campaign"], float(job["start_at"]))
        pacer.release_campaign(job["campaign"], lease_seconds=remaining and remaining + 1, out_of_time=out_of_time)

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(process_partial_response(event=event, record_handler=release, processor=processor, context=context))
