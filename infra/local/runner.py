"""Local stand-in for Lambda's event source mappings and EventBridge schedules.

Calls the very handler objects of the Chalice app (the module-level functions of app.py, which
Chalice wraps into Lambda-callable `handler(event, context)` objects) with events shaped exactly as
Lambda sends them:

- `@app.on_sqs_message`: polls the queue the template's override names (`Resources.<Fn>.Properties.
  Events.<Fn>SqsEventSource.Properties.Queue`), up to `maximum_concurrency` batches at once (capped by
  the stage's `reserved_concurrency`), and deletes what succeeded (partial batch responses are
  honoured only when the template sets `FunctionResponseTypes: [ReportBatchItemFailures]`, as in AWS).
- `@app.on_dynamodb_record`: reads the stream of the table the override names, in order, retrying a
  failed batch until it succeeds (Lambda's default for streams).
- `@app.schedule`: fires every `schedule_tick_seconds` (faster than the rate in AWS).
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Self

import boto3
from botocore.config import Config as BotoConfig
from chalice.app import (
    BaseEventSourceConfig,
    DynamoDBEventConfig,
    ScheduledEventConfig,
    SQSEventConfig,
)
from chalice.config import Config as ChaliceConfig
from chalice.constants import DEFAULT_LAMBDA_MEMORY_SIZE, DEFAULT_LAMBDA_TIMEOUT

from infra.local.resources import (
    DEFAULT_PREFIX,
    DEFAULT_TEMPLATE_PATH,
    QUEUE_TYPE,
    REPO_ROOT,
    TABLE_TYPE,
    dynamodb_event_source_table,
    function_logical_id,
    load_template,
    queue_name,
    resources_of_type,
    table_name,
)

logger = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"
DEFAULT_CONFIG_PATH = REPO_ROOT / ".chalice" / "config.json"
SQS_MAX_BATCH = 10
# Lambda polls an SQS queue with 5 concurrent batches when nothing caps it.
DEFAULT_SQS_CONCURRENCY = 5
STREAM_RETRY_MAX_SECONDS = 5.0
SHARD_REFRESH_SECONDS = 10.0


class EventSourceError(RuntimeError):
    """An event source of the app cannot be mapped to a local resource."""


@dataclass
class LambdaContext:
    """What the Python runtime passes as `context` (the attributes handlers and Powertools read)."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: int
    log_group_name: str
    log_stream_name: str
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class _Function:
    """One Lambda function of the app, as deployed for `stage`."""

    name: str
    handler: Callable[[dict[str, Any], Any], Any]
    full_name: str
    arn: str
    memory_mb: int
    timeout_seconds: int
    reserved_concurrency: int | None

    def context(self) -> LambdaContext:
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        return LambdaContext(
            function_name=self.full_name,
            invoked_function_arn=self.arn,
            memory_limit_in_mb=self.memory_mb,
            timeout_seconds=self.timeout_seconds,
            log_group_name=f"/aws/lambda/{self.full_name}",
            log_stream_name=f"{day}/[$LATEST]{uuid.uuid4().hex}",
        )


@dataclass
class _ShardPositions:
    """Where the stream reader is in each shard."""

    iterators: dict[str, str] = field(default_factory=dict)
    last_sequence: dict[str, str] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    # Records read but not yet delivered, gathering up to the batch size or the batching window.
    pending: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pending_since: dict[str, float] = field(default_factory=dict)


@dataclass
class _Poller:
    """Idle bookkeeping of one poll loop: consecutive empty polls since the last relevant activity."""

    source: str
    empty_streak: int = 0
    streak_since: int = -1


class LocalEventRunner:
    def __init__(
        self,
        app_module: ModuleType,
        env: Mapping[str, str],
        endpoint_url: str | None,
        region: str = "us-east-1",
        schedule_tick_seconds: float = 1.0,
        stream_poll_seconds: float = 0.2,
        sqs_wait_seconds: int = 1,
        stage: str = "local",
        *,
        template_path: Path = DEFAULT_TEMPLATE_PATH,
        config_path: Path = DEFAULT_CONFIG_PATH,
        prefix: str = DEFAULT_PREFIX,
        idle_polls: int = 2,
    ) -> None:
        self.app_module = app_module
        self.env = dict(env)
        self.endpoint_url = endpoint_url
        self.region = region
        self.schedule_tick_seconds = schedule_tick_seconds
        self.stream_poll_seconds = stream_poll_seconds
        self.sqs_wait_seconds = sqs_wait_seconds
        self.stage = stage
        self.template_path = Path(template_path)
        self.config_path = Path(config_path)
        self.prefix = prefix
        self.idle_polls = idle_polls

        self._template = load_template(self.template_path)
        with self.config_path.open(encoding="utf-8") as f:
            self._config_from_disk: dict[str, Any] = json.load(f)

        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._pollers: list[_Poller] = []
        self._queue_urls: list[str] = []
        self._invocations: dict[str, int] = {}
        self._errors: dict[str, int] = {}
        self._in_flight = 0
        # Bumped when an SQS/stream invocation ends (`_work_seq`) or any invocation ends (`_any_seq`).
        self._work_seq = 0
        self._any_seq = 0
        self._saved_environ: dict[str, str | None] = {}
        self._started = False
        self._sqs: Any = None
        self._dynamodb: Any = None
        self._streams: Any = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._apply_environment()
        sources = list(self.app_module.app.event_sources)
        pool = 4 + sum(self._concurrency(s) for s in sources if isinstance(s, SQSEventConfig)) + len(sources)
        boto_config = BotoConfig(max_pool_connections=pool, retries={"mode": "standard", "max_attempts": 5})
        kwargs: dict[str, Any] = {"region_name": self.region, "config": boto_config}
        self._sqs = boto3.client("sqs", endpoint_url=self.endpoint_url, **kwargs)
        self._dynamodb = boto3.client("dynamodb", endpoint_url=self.endpoint_url, **kwargs)
        # An explicit endpoint: botocore's account-based endpoints for Streams are not routed by moto.
        self._streams = boto3.client("dynamodbstreams", endpoint_url=self.endpoint_url, **kwargs)
        self._stop.clear()
        try:
            for source in sources:
                self._start_source(source)
        except Exception:
            self.stop()
            raise
        self._started = True
        logger.info("local event runner started %d threads", len(self._threads))

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            logger.warning("event runner threads still running after %.1fs: %s", timeout, alive)
        self._threads = []
        self._pollers = []
        self._queue_urls = []
        self._restore_environment()
        self._started = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- observability ---------------------------------------------------------------------------

    @property
    def aws_clients(self) -> list[Any]:
        """The clients the runner polls with (what Lambda's event source mappings would call)."""
        return [client for client in (self._sqs, self._dynamodb, self._streams) if client is not None]

    @property
    def invocations(self) -> dict[str, int]:
        with self._lock:
            return dict(self._invocations)

    @property
    def errors(self) -> dict[str, int]:
        with self._lock:
            return dict(self._errors)

    def idle(self) -> bool:
        """True when nothing runs and the last `idle_polls` polls of every queue and stream were empty.

        Empty polls count only when they began after the last invocation that could have produced
        work for them ended; queues are also asked whether they hold visible or delayed messages.
        Messages waiting out a visibility timeout after a failure do not count.
        """
        with self._lock:
            if self._in_flight:
                return False
            for poller in self._pollers:
                since = self._any_seq if poller.source == "stream" else self._work_seq
                if poller.streak_since != since or poller.empty_streak < self.idle_polls:
                    return False
            queue_urls = list(self._queue_urls)
        for url in queue_urls:
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
            )["Attributes"]
            if any(int(value) for value in attributes.values()):
                return False
        return True

    def wait_idle(self, timeout: float = 60.0, poll_seconds: float = 0.1) -> bool:
        """Block until `idle()` (True) or until `timeout` seconds have passed (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(poll_seconds)
        return self.idle()

    # -- environment -----------------------------------------------------------------------------

    def _apply_environment(self) -> None:
        """The functions' environment: config.json's (global + stage), then `env`, like Lambda's."""
        environment = dict(
            ChaliceConfig(self.stage, "", config_from_disk=self._config_from_disk).environment_variables or {}
        )
        environment.update(self.env)
        environment.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
        for key, value in environment.items():
            self._saved_environ.setdefault(key, os.environ.get(key))
            os.environ[key] = str(value)

    def _restore_environment(self) -> None:
        for key, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_environ = {}

    # -- functions -------------------------------------------------------------------------------

    def _function(self, source: BaseEventSourceConfig) -> _Function:
        module_name, _, attribute = source.handler_string.rpartition(".")
        if module_name in ("", "app", self.app_module.__name__):
            module = self.app_module
        else:
            module = importlib.import_module(module_name)  # a blueprint's module
        handler = getattr(module, attribute)
        config = ChaliceConfig(self.stage, source.name, config_from_disk=self._config_from_disk)
        app_name = config.app_name or self.app_module.app.app_name
        full_name = f"{app_name}-{self.stage}-{source.name}"
        return _Function(
            name=source.name,
            handler=handler,
            full_name=full_name,
            arn=f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{full_name}",
            memory_mb=int(config.lambda_memory_size or DEFAULT_LAMBDA_MEMORY_SIZE),
            timeout_seconds=int(config.lambda_timeout or DEFAULT_LAMBDA_TIMEOUT),
            reserved_concurrency=config.reserved_concurrency,
        )

    def _invoke(self, function: _Function, event: dict[str, Any], *, work: bool) -> tuple[bool, Any]:
        """Call the handler like Lambda does; (True, result) or (False, None) when it raised."""
        context = function.context()
        with self._lock:
            self._in_flight += 1
            self._invocations[function.name] = self._invocations.get(function.name, 0) + 1
        try:
            return True, function.handler(event, context)
        except Exception:
            logger.exception("%s failed (request %s)", function.name, context.aws_request_id)
            with self._lock:
                self._errors[function.name] = self._errors.get(function.name, 0) + 1
            return False, None
        finally:
            with self._lock:
                self._in_flight -= 1
                self._any_seq += 1
                if work:
                    self._work_seq += 1

    def _poll_result(self, poller: _Poller, found: bool, started_at_seq: int) -> None:
        with self._lock:
            if found:
                poller.empty_streak = 0
                poller.streak_since = -1
                return
            if poller.streak_since != started_at_seq:
                poller.streak_since = started_at_seq
                poller.empty_streak = 0
            poller.empty_streak += 1

    def _seq_for(self, poller: _Poller) -> int:
        with self._lock:
            return self._any_seq if poller.source == "stream" else self._work_seq

    def _start_source(self, source: BaseEventSourceConfig) -> None:
        if isinstance(source, SQSEventConfig):
            self._start_sqs(source)
        elif isinstance(source, DynamoDBEventConfig):
            self._start_stream(source)
        elif isinstance(source, ScheduledEventConfig):
            self._start_schedule(source)
        else:
            logger.warning("event source %s (%s) is not run locally", source.name, type(source).__name__)

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=self._guarded, args=(target, *args), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _guarded(self, target: Callable[..., None], *args: Any) -> None:
        """A poll loop never dies: an unexpected error is logged and the loop starts over."""
        while not self._stop.is_set():
            try:
                target(*args)
                return
            except Exception:
                logger.exception("event runner loop %s crashed; restarting", threading.current_thread().name)
                self._stop.wait(1.0)

    # -- SQS -------------------------------------------------------------------------------------

    def _concurrency(self, source: SQSEventConfig) -> int:
        config = ChaliceConfig(self.stage, source.name, config_from_disk=self._config_from_disk)
        concurrency = source.maximum_concurrency or DEFAULT_SQS_CONCURRENCY
        if config.reserved_concurrency:
            concurrency = min(concurrency, int(config.reserved_concurrency))
        return max(1, concurrency)

    def _sqs_event_source(self, source: SQSEventConfig) -> dict[str, Any]:
        logical_id = function_logical_id(source.name)
        function = self._template.get("Resources", {}).get(logical_id) or {}
        event: dict[str, Any] = (
            function.get("Properties", {}).get("Events", {}).get(f"{logical_id}SqsEventSource") or {}
        )
        properties: dict[str, Any] = event.get("Properties", {})
        return properties

    def _queue_for(self, source: SQSEventConfig) -> tuple[str, str]:
        """(url, arn) of the queue: the template's override, else the queue named by the decorator."""
        override = self._sqs_event_source(source).get("Queue")
        queues = resources_of_type(self._template, QUEUE_TYPE)
        target = None
        if isinstance(override, dict):
            get_att = override.get("Fn::GetAtt") or [override.get("Ref")]
            target = get_att[0] if isinstance(get_att, list) else str(get_att).split(".", 1)[0]
        if target in queues:
            name = queue_name(self.prefix, str(target), queues[str(target)].get("Properties"))
        elif source.queue_arn:
            name = source.queue_arn.rsplit(":", 1)[-1]
        elif source.queue:
            name = source.queue
        else:
            raise EventSourceError(f"no queue for SQS event source {source.name}")
        try:
            url: str = self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except Exception as exc:
            raise EventSourceError(
                f"queue {name!r} for {source.name} does not exist; map the function to a template queue "
                f"with Resources.{function_logical_id(source.name)}.Properties.Events."
                f"{function_logical_id(source.name)}SqsEventSource.Properties.Queue"
            ) from exc
        arn: str = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def _start_sqs(self, source: SQSEventConfig) -> None:
        function = self._function(source)
        url, arn = self._queue_for(source)
        reports_failures = "ReportBatchItemFailures" in (
            self._sqs_event_source(source).get("FunctionResponseTypes") or []
        )
        batch_size = min(source.batch_size, SQS_MAX_BATCH)
        if source.batch_size > SQS_MAX_BATCH:
            logger.warning("%s: batch_size %d polled as %d", source.name, source.batch_size, SQS_MAX_BATCH)
        self._queue_urls.append(url)
        for i in range(self._concurrency(source)):
            poller = _Poller(source="sqs")
            self._pollers.append(poller)
            self._spawn(
                f"sqs-{source.name}-{i}",
                self._sqs_loop,
                function,
                url,
                arn,
                batch_size,
                reports_failures,
                poller,
            )

    def _sqs_loop(
        self,
        function: _Function,
        url: str,
        arn: str,
        batch_size: int,
        reports_failures: bool,
        poller: _Poller,
    ) -> None:
        while not self._stop.is_set():
            started_at = self._seq_for(poller)
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=batch_size,
                    WaitTimeSeconds=self.sqs_wait_seconds,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception:
                logger.exception("%s: ReceiveMessage failed", function.name)
                self._stop.wait(1.0)
                continue
            self._poll_result(poller, bool(messages), started_at)
            if messages:
                self._process_sqs_batch(function, url, arn, messages, reports_failures)

    def _process_sqs_batch(
        self,
        function: _Function,
        url: str,
        arn: str,
        messages: list[dict[str, Any]],
        reports_failures: bool,
    ) -> None:
        records = [self._sqs_record(message, arn) for message in messages]
        ok, result = self._invoke(function, {"Records": records}, work=True)
        if not ok:
            return  # Lambda deletes nothing: the batch comes back after the visibility timeout
        failed = self._failed_message_ids(function, records, result, reports_failures)
        if failed is None:
            return
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), SQS_MAX_BATCH):
            chunk = done[start : start + SQS_MAX_BATCH]
            try:
                response = self._sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
                )
            except Exception:
                logger.exception("%s: DeleteMessageBatch failed", function.name)
                continue
            for failure in response.get("Failed", []):
                logger.error("%s: could not delete a message: %s", function.name, failure)

    def _failed_message_ids(
        self,
        function: _Function,
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

    def _sqs_record(self, message: Mapping[str, Any], arn: str) -> dict[str, Any]:
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": {
                name: _lambda_message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": self.region,
        }
        if message.get("MD5OfMessageAttributes"):
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        return record

    # -- DynamoDB Streams ------------------------------------------------------------------------

    def _stream_arn_for(self, source: DynamoDBEventConfig) -> str:
        logical_id = dynamodb_event_source_table(self._template, source.name)
        tables = resources_of_type(self._template, TABLE_TYPE)
        if logical_id in tables:
            name = table_name(self.prefix, str(logical_id))
        else:
            # No override: the decorator's ARN names the table (arn:...:table/<name>/stream/<label>).
            name = source.stream_arn.split(":table/", 1)[-1].split("/", 1)[0]
        try:
            description = self._dynamodb.describe_table(TableName=name)["Table"]
        except Exception as exc:
            raise EventSourceError(
                f"table {name!r} for {source.name} does not exist; map the function to a template table "
                f"with Resources.{function_logical_id(source.name)}.Properties.Events."
                f"{function_logical_id(source.name)}DynamodbEventSource.Properties.Stream"
            ) from exc
        stream_arn = description.get("LatestStreamArn")
        if not stream_arn:
            raise EventSourceError(f"table {name!r} for {source.name} has no stream")
        return str(stream_arn)

    def _start_stream(self, source: DynamoDBEventConfig) -> None:
        function = self._function(source)
        stream_arn = self._stream_arn_for(source)
        poller = _Poller(source="stream")
        self._pollers.append(poller)
        window = float(source.maximum_batching_window_in_seconds or 0)
        self._spawn(f"stream-{source.name}", self._stream_loop, function, stream_arn, source.batch_size, window, poller)

    def _shard_ids(self, stream_arn: str) -> list[str]:
        shards: list[str] = []
        kwargs: dict[str, Any] = {"StreamArn": stream_arn}
        while True:
            description = self._streams.describe_stream(**kwargs)["StreamDescription"]
            shards.extend(shard["ShardId"] for shard in description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            kwargs["ExclusiveStartShardId"] = last

    def _stream_loop(
        self, function: _Function, stream_arn: str, batch_size: int, window: float, poller: _Poller
    ) -> None:
        shards = _ShardPositions()
        next_refresh = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_refresh:
                try:
                    for shard_id in self._shard_ids(stream_arn):
                        if shard_id not in shards.iterators and shard_id not in shards.finished:
                            shards.iterators[shard_id] = self._shard_iterator(stream_arn, shard_id, None)
                    next_refresh = time.monotonic() + SHARD_REFRESH_SECONDS
                except Exception:
                    logger.exception("%s: DescribeStream failed", function.name)
                    self._stop.wait(1.0)
                    continue
            started_at = self._seq_for(poller)
            found = False
            for shard_id in list(shards.iterators):
                if self._stop.is_set():
                    return
                pending = shards.pending.setdefault(shard_id, [])
                try:
                    response = self._streams.get_records(
                        ShardIterator=shards.iterators[shard_id], Limit=batch_size - len(pending)
                    )
                except Exception:
                    # E.g. an expired iterator: resume right after the last record delivered.
                    logger.exception("%s: GetRecords failed on %s", function.name, shard_id)
                    pending.clear()
                    self._stop.wait(1.0)
                    try:
                        shards.iterators[shard_id] = self._shard_iterator(
                            stream_arn, shard_id, shards.last_sequence.get(shard_id)
                        )
                    except Exception:
                        logger.exception("%s: GetShardIterator failed on %s", function.name, shard_id)
                    continue
                raw = response.get("Records", [])
                if raw:
                    found = True
                    if not pending:
                        shards.pending_since[shard_id] = time.monotonic()
                    pending.extend(self._stream_record(r, stream_arn) for r in raw)
                next_iterator = response.get("NextShardIterator")
                # Like Lambda: deliver when the batch is full or the batching window has passed.
                if pending and (
                    len(pending) >= batch_size
                    or not next_iterator
                    or time.monotonic() - shards.pending_since[shard_id] >= window
                ):
                    self._deliver_stream_batch(function, list(pending))
                    shards.last_sequence[shard_id] = pending[-1]["dynamodb"]["SequenceNumber"]
                    pending.clear()
                if next_iterator:
                    shards.iterators[shard_id] = next_iterator
                else:  # a closed shard, read to its end
                    del shards.iterators[shard_id]
                    shards.finished.add(shard_id)
            waiting = any(shards.pending.values())
            self._poll_result(poller, found or waiting, started_at)
            if not found:
                self._stop.wait(self.stream_poll_seconds)

    def _shard_iterator(self, stream_arn: str, shard_id: str, after_sequence: str | None) -> str:
        kwargs: dict[str, Any] = {"StreamArn": stream_arn, "ShardId": shard_id}
        if after_sequence is None:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"  # the stack starts with empty tables
        else:
            kwargs["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
            kwargs["SequenceNumber"] = after_sequence
        iterator: str = self._streams.get_shard_iterator(**kwargs)["ShardIterator"]
        return iterator

    def _deliver_stream_batch(self, function: _Function, records: list[dict[str, Any]]) -> None:
        """Retry the same batch until it succeeds: a stream shard is processed in order."""
        attempt = 0
        while True:
            ok, _ = self._invoke(function, {"Records": records}, work=True)
            if ok or self._stop.is_set():
                return
            attempt += 1
            self._stop.wait(min(STREAM_RETRY_MAX_SECONDS, 0.2 * 2**attempt))

    def _stream_record(self, record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
        source = record.get("dynamodb", {})
        dynamodb: dict[str, Any] = {
            "ApproximateCreationDateTime": _epoch_seconds(source.get("ApproximateCreationDateTime")),
            "Keys": _lambda_attribute_value(source.get("Keys", {})),
            "SequenceNumber": source["SequenceNumber"],
            "SizeBytes": source.get("SizeBytes", 0),
            "StreamViewType": source.get("StreamViewType"),
        }
        for image in ("NewImage", "OldImage"):
            if image in source:
                dynamodb[image] = _lambda_attribute_value(source[image])
        shaped: dict[str, Any] = {
            "eventID": record["eventID"],
            "eventName": record["eventName"],
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": self.region,
            "dynamodb": dynamodb,
            "eventSourceARN": stream_arn,
        }
        if "userIdentity" in record:
            shaped["userIdentity"] = record["userIdentity"]
        return shaped

    # -- schedules -------------------------------------------------------------------------------

    def _start_schedule(self, source: ScheduledEventConfig) -> None:
        function = self._function(source)
        app_name = self.app_module.app.app_name
        rule_arn = f"arn:aws:events:{self.region}:{ACCOUNT_ID}:rule/{app_name}-{self.stage}-{source.name}-event"
        self._spawn(f"schedule-{source.name}", self._schedule_loop, function, rule_arn)

    def _schedule_loop(self, function: _Function, rule_arn: str) -> None:
        next_fire = time.monotonic() + self.schedule_tick_seconds
        while not self._stop.wait(max(0.0, next_fire - time.monotonic())):
            # A fixed rate, but never two at once (reserved concurrency 1 in AWS) and no burst of catch-ups.
            next_fire = max(next_fire + self.schedule_tick_seconds, time.monotonic())
            event = {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": ACCOUNT_ID,
                "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": self.region,
                "resources": [rule_arn],
                "detail": {},
            }
            self._invoke(function, event, work=False)


def _epoch_seconds(value: Any) -> int:
    """Lambda sends ApproximateCreationDateTime as epoch seconds; boto3 parses it into a datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp())
    if value is None:
        return int(time.time())
    return int(float(value))


def _lambda_attribute_value(value: Any) -> Any:
    """Attribute values as JSON: binary values base64-encoded (boto3 hands them over as bytes)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {k: _lambda_attribute_value(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_lambda_attribute_value(v) for v in value]
    return value


def _lambda_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    attribute: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [_lambda_attribute_value(v) for v in value.get("BinaryListValues", [])],
        "dataType": value.get("DataType", "String"),
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = _lambda_attribute_value(value["BinaryValue"])
    return attribute
