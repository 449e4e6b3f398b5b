"""Bulk Campaign API: routes and event handlers only; every handler is one call into chalicelib."""

from __future__ import annotations

from typing import Any

from chalice import Chalice, Rate
from chalice.app import CloudWatchEvent, DynamoDBEvent, SQSEvent

from chalicelib.api import register_api
from chalicelib.domain.email_events import DETAIL_TYPES as SES_DETAIL_TYPES
from chalicelib.workers import dead_letters as dead_letters_worker
from chalicelib.workers import dispatch as dispatch_worker
from chalicelib.workers import email_events as email_events_worker
from chalicelib.workers import erasure as erasure_worker
from chalicelib.workers import events as events_worker
from chalicelib.workers import export as export_worker
from chalicelib.workers import ingest as ingest_worker
from chalicelib.workers import list_purge as list_purge_worker
from chalicelib.workers import release as release_worker
from chalicelib.workers import stats as stats_worker
from chalicelib.workers import webhooks as webhooks_worker

app = Chalice(app_name="bulk-campaign-api")
register_api(app)

# Placeholders: infra/template.json replaces each with Fn::GetAtt of the resource it defines.
RELEASE_QUEUE_PLACEHOLDER = "arn:aws:sqs:us-east-1:000000000000:release"
DISPATCH_QUEUE_PLACEHOLDER = "arn:aws:sqs:us-east-1:000000000000:dispatch"
DISPATCH_DLQ_PLACEHOLDER = "arn:aws:sqs:us-east-1:000000000000:dispatch-dead-letters"
INGEST_QUEUE_PLACEHOLDER = "arn:aws:sqs:us-east-1:000000000000:ingest"
EXPORT_QUEUE_PLACEHOLDER = "arn:aws:sqs:us-east-1:000000000000:export"
LIST_PURGE_QUEUE_PLACEHOLDER = "arn:aws:sqs:us-east-1:000000000000:list-purge"
ERASURE_QUEUE_PLACEHOLDER = "arn:aws:sqs:us-east-1:000000000000:erasure"
WEBHOOK_QUEUE_PLACEHOLDER = "arn:aws:sqs:us-east-1:000000000000:webhooks"
DELIVERIES_STREAM_PLACEHOLDER = "arn:aws:dynamodb:us-east-1:000000000000:table/deliveries/stream/placeholder"


@app.schedule(Rate(1, unit=Rate.MINUTES))
def release_tick(event: CloudWatchEvent) -> None:
    release_worker.fan_out()


@app.on_sqs_message(queue_arn=RELEASE_QUEUE_PLACEHOLDER, batch_size=5, maximum_concurrency=5)
def release(event: SQSEvent) -> dict[str, Any]:
    return release_worker.handle_jobs(event.to_dict(), event.context)


@app.on_sqs_message(queue_arn=DISPATCH_QUEUE_PLACEHOLDER, batch_size=4, maximum_concurrency=10)
def dispatch(event: SQSEvent) -> dict[str, Any]:
    return dispatch_worker.handle_batch(event.to_dict(), event.context)


@app.on_sqs_message(queue_arn=DISPATCH_DLQ_PLACEHOLDER, batch_size=10, maximum_concurrency=2)
def dead_letters(event: SQSEvent) -> dict[str, Any]:
    return dead_letters_worker.handle_batch(event.to_dict(), event.context)


@app.on_sqs_message(queue_arn=INGEST_QUEUE_PLACEHOLDER, batch_size=1)
def ingest(event: SQSEvent) -> dict[str, Any]:
    return ingest_worker.handle_batch(event.to_dict(), event.context)


@app.on_sqs_message(queue_arn=EXPORT_QUEUE_PLACEHOLDER, batch_size=1, maximum_concurrency=2)
def export(event: SQSEvent) -> dict[str, Any]:
    return export_worker.handle_batch(event.to_dict(), event.context)


@app.on_sqs_message(queue_arn=LIST_PURGE_QUEUE_PLACEHOLDER, batch_size=1, maximum_concurrency=2)
def list_purge(event: SQSEvent) -> dict[str, Any]:
    return list_purge_worker.handle_batch(event.to_dict(), event.context)


@app.on_sqs_message(queue_arn=ERASURE_QUEUE_PLACEHOLDER, batch_size=1, maximum_concurrency=2)
def erasure(event: SQSEvent) -> dict[str, Any]:
    return erasure_worker.handle_batch(event.to_dict(), event.context)


@app.on_dynamodb_record(
    stream_arn=DELIVERIES_STREAM_PLACEHOLDER,
    batch_size=1000,
    starting_position="TRIM_HORIZON",
    maximum_batching_window_in_seconds=1,
)
def stats(event: DynamoDBEvent) -> None:
    stats_worker.apply_delivery_changes(event.to_dict())


@app.on_dynamodb_record(
    stream_arn=DELIVERIES_STREAM_PLACEHOLDER,
    batch_size=1000,
    starting_position="TRIM_HORIZON",
    maximum_batching_window_in_seconds=1,
)
def events(event: DynamoDBEvent) -> None:
    events_worker.record_delivery_changes(event.to_dict())


@app.on_sqs_message(queue_arn=WEBHOOK_QUEUE_PLACEHOLDER, batch_size=10, maximum_concurrency=5)
def webhooks(event: SQSEvent) -> dict[str, Any]:
    return webhooks_worker.handle_batch(event.to_dict(), event.context)


@app.on_cw_event({"source": ["aws.ses"], "detail-type": list(SES_DETAIL_TYPES)})
def email_events(event: CloudWatchEvent) -> None:
    email_events_worker.handle_event(event.to_dict())
