"""`@app.on_sqs_message`, as Lambda's SQS event source mapping runs it.

Polls the queue the template's override names (`Resources.<Fn>.Properties.Events.<Fn>SqsEventSource.
Properties.Queue`), else the queue the decorator names, with up to `maximum_concurrency` batches at
once (capped by the stage's `reserved_concurrency`; 5 when nothing caps it, as in AWS). Every SQS
event source of the app is polled, each with its own loops.

After an invocation, like Lambda:
- success: the batch is deleted, except the records a partial batch response lists, which is
  honoured only when the template sets `FunctionResponseTypes: [ReportBatchItemFailures]`; a
  malformed partial response fails the whole batch;
- an exception, or running past the function's timeout: nothing is deleted, and the batch comes
  back after the queue's visibility timeout. A timed-out handler cannot be stopped (it is a thread):
  it runs on, and whatever it returns is ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chalice.app import SQSEventConfig

from infra.local.events.base import EventSource, EventSourceError, Function, Poller, lambda_attribute_value
from infra.local.resources import QUEUE_TYPE, function_logical_id, queue_name, resources_of_type

if TYPE_CHECKING:
    from infra.local.runner import LocalEventRunner

logger = logging.getLogger(__name__)

SQS_MAX_BATCH = 10
# Lambda polls an SQS queue with 5 concurrent batches when nothing caps it.
DEFAULT_SQS_CONCURRENCY = 5


class SqsEventSource(EventSource):
    config_type = SQSEventConfig
    config: SQSEventConfig

    def __init__(self, runner: LocalEventRunner, config: SQSEventConfig) -> None:
        super().__init__(runner, config)
        self.url = ""
        self.arn = ""

    def concurrency(self) -> int:
        chalice_config = self.runner.chalice_config(self.config.name)
        concurrency = self.config.maximum_concurrency or DEFAULT_SQS_CONCURRENCY
        if chalice_config.reserved_concurrency:
            concurrency = min(concurrency, int(chalice_config.reserved_concurrency))
        return max(1, concurrency)

    def connections(self) -> int:
        return self.concurrency() + 1

    def queue_urls(self) -> list[str]:
        return [self.url] if self.url else []

    def mapping_properties(self) -> dict[str, Any]:
        """`Resources.<Fn>.Properties.Events.<Fn>SqsEventSource.Properties` of the template."""
        logical_id = function_logical_id(self.config.name)
        function = self.runner.template.get("Resources", {}).get(logical_id) or {}
        event: dict[str, Any] = (
            function.get("Properties", {}).get("Events", {}).get(f"{logical_id}SqsEventSource") or {}
        )
        properties: dict[str, Any] = event.get("Properties", {})
        return properties

    def resolve_queue(self) -> tuple[str, str]:
        """(url, arn) of the queue: the template's override, else the queue named by the decorator."""
        source = self.config
        override = self.mapping_properties().get("Queue")
        queues = resources_of_type(self.runner.template, QUEUE_TYPE)
        target = None
        if isinstance(override, dict):
            get_att = override.get("Fn::GetAtt") or [override.get("Ref")]
            target = get_att[0] if isinstance(get_att, list) else str(get_att).split(".", 1)[0]
        if target in queues:
            name = queue_name(self.runner.prefix, str(target), queues[str(target)].get("Properties"))
        elif source.queue_arn:
            name = source.queue_arn.rsplit(":", 1)[-1]
        elif source.queue:
            name = source.queue
        else:
            raise EventSourceError(f"no queue for SQS event source {source.name}")
        sqs = self.runner.sqs
        try:
            url: str = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except Exception as exc:
            raise EventSourceError(
                f"queue {name!r} for {source.name} does not exist; map the function to a template queue "
                f"with Resources.{function_logical_id(source.name)}.Properties.Events."
                f"{function_logical_id(source.name)}SqsEventSource.Properties.Queue"
            ) from exc
        arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def start(self) -> None:
        function = self.runner.function(self.config)
        self.url, self.arn = self.resolve_queue()
        reports_failures = "ReportBatchItemFailures" in (self.mapping_properties().get("FunctionResponseTypes") or [])
        batch_size = min(self.config.batch_size, SQS_MAX_BATCH)
        if self.config.batch_size > SQS_MAX_BATCH:
            logger.warning("%s: batch_size %d polled as %d", self.config.name, self.config.batch_size, SQS_MAX_BATCH)
        for i in range(self.concurrency()):
            poller = self.runner.new_poller("sqs")
            self.runner.spawn(f"sqs-{self.config.name}-{i}", self.loop, function, batch_size, reports_failures, poller)

    def loop(self, function: Function, batch_size: int, reports_failures: bool, poller: Poller) -> None:
        stopping = self.runner.stopping
        while not stopping.is_set():
            started_at = self.runner.poll_started(poller)
            try:
                messages = self.runner.sqs.receive_message(
                    QueueUrl=self.url,
                    MaxNumberOfMessages=batch_size,
                    WaitTimeSeconds=self.runner.sqs_wait_seconds,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception:
                logger.exception("%s: ReceiveMessage failed", function.name)
                stopping.wait(1.0)
                continue
            self.runner.poll_result(poller, bool(messages), started_at)
            if messages:
                self.process_batch(function, messages, reports_failures)

    def process_batch(self, function: Function, messages: list[dict[str, Any]], reports_failures: bool) -> None:
        records = [self.record(message) for message in messages]
        invocation = self.runner.invoke(function, {"Records": records}, work=True)
        if not invocation.ok:
            return  # Lambda deletes nothing: the batch comes back after the visibility timeout
        failed = failed_message_ids(function, records, invocation.result, reports_failures)
        if failed is None:
            return
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), SQS_MAX_BATCH):
            chunk = done[start : start + SQS_MAX_BATCH]
            try:
                response = self.runner.sqs.delete_message_batch(
                    QueueUrl=self.url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
                )
            except Exception:
                logger.exception("%s: DeleteMessageBatch failed", function.name)
                continue
            for failure in response.get("Failed", []):
                logger.error("%s: could not delete a message: %s", function.name, failure)

    def record(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """One record of the event, as Lambda shapes a received message."""
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": {
                name: lambda_message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.arn,
            "awsRegion": self.runner.region,
        }
        if message.get("MD5OfMessageAttributes"):
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        return record


def failed_message_ids(
    function: Function,
    records: list[dict[str, Any]],
    result: Any,
    reports_failures: bool,
) -> set[str] | None:
    """Ids to keep on the queue, or None when the whole batch counts as failed."""
    if not isinstance(result, dict) or not result.get("batchItemFailures"):
        return set()
    if not reports_failures:
        logger.warning(
            "%s returned batchItemFailures but the template does not set FunctionResponseTypes: "
            "[ReportBatchItemFailures]; as in AWS, the whole batch is deleted",
            function.name,
        )
        return set()
    ids = {r["messageId"] for r in records}
    failed: set[str] = set()
    for item in result["batchItemFailures"]:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in ids:
            # Lambda treats a malformed partial response as a failure of the whole batch.
            logger.error("%s: invalid batchItemFailures entry %r; batch failed", function.name, item)
            return None
        failed.add(identifier)
    return failed


def lambda_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    attribute: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [lambda_attribute_value(v) for v in value.get("BinaryListValues", [])],
        "dataType": value.get("DataType", "String"),
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = lambda_attribute_value(value["BinaryValue"])
    return attribute
