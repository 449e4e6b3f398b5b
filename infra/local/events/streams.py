"""`@app.on_dynamodb_record`, as Lambda's DynamoDB Streams event source mapping runs it.

Reads the stream of the table the template's override names (`Resources.<Fn>.Properties.Events.
<Fn>DynamodbEventSource.Properties.Stream`), else the table in the decorator's ARN: every shard in
order, delivering a batch when it holds `batch_size` records or its batching window has passed, and
retrying a failed batch (an exception or a timeout) until it succeeds (Lambda's default for streams).

Positions start at TRIM_HORIZON (the stack starts with empty tables). With a checkpoint file (the
runner's `checkpoint_path`), the last record delivered in each shard is kept there, and a new runner
resumes after it: Lambda's event source mapping keeps its position when a poller fails, so a runner
process killed and restarted does not replay the whole stream (the batch in flight at the kill is
delivered again, as Lambda may).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chalice.app import DynamoDBEventConfig

from infra.local.events.base import EventSource, EventSourceError, Function, Poller
from infra.local.resources import TABLE_TYPE, dynamodb_event_source_table, function_logical_id, resources_of_type
from infra.local.resources import table_name as template_table_name

logger = logging.getLogger(__name__)

STREAM_RETRY_MAX_SECONDS = 5.0
SHARD_REFRESH_SECONDS = 10.0
GATHERING_POLL_SECONDS = 0.25
GET_RECORDS = "before-parse.dynamodb-streams.GetRecords"


def records_as_sent(streams: Any) -> None:
    """GetRecords on this client answers its records as the wire holds them, not as botocore's parser
    makes them: Lambda's poller hands a function the wire format (attribute values as `{"S": ...}`,
    `ApproximateCreationDateTime` in epoch seconds), and parsing each record into Python values only for
    `record()` to turn them back cost the runner's process more CPU than the handlers it feeds (46% of
    its GIL time in a 3,000-recipient campaign, with py-spy). Errors are parsed as botocore parses them."""

    def raw_records(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
        if response_dict.get("status_code") != 200:
            return
        customized_response_dict.update(json.loads(response_dict["body"]))
        response_dict["body"] = b"{}"

    streams.meta.events.register(GET_RECORDS, raw_records)


@dataclass
class ShardPositions:
    """Where the stream reader is in each shard."""

    iterators: dict[str, str] = field(default_factory=dict)
    last_sequence: dict[str, str] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    # Records read but not yet delivered, gathering up to the batch size or the batching window.
    pending: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pending_since: dict[str, float] = field(default_factory=dict)


class Checkpoints:
    """The last sequence number delivered per stream and shard, in a JSON file (written atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._positions: dict[str, dict[str, str]] = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self._positions = {}
        except (OSError, ValueError):
            logger.exception("unreadable stream checkpoints %s; starting from TRIM_HORIZON", self.path)
            self._positions = {}

    def get(self, stream_arn: str) -> dict[str, str]:
        with self._lock:
            return dict(self._positions.get(stream_arn, {}))

    def save(self, stream_arn: str, shard_id: str, sequence_number: str) -> None:
        with self._lock:
            self._positions.setdefault(stream_arn, {})[shard_id] = sequence_number
            temporary = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            temporary.write_text(json.dumps(self._positions), encoding="utf-8")
            os.replace(temporary, self.path)


class StreamEventSource(EventSource):
    config_type = DynamoDBEventConfig
    config: DynamoDBEventConfig

    def stream_arn(self) -> str:
        source = self.config
        template = self.runner.template
        logical_id = dynamodb_event_source_table(template, source.name)
        if logical_id in resources_of_type(template, TABLE_TYPE):
            name = template_table_name(self.runner.prefix, str(logical_id))
        else:
            # No override: the decorator's ARN names the table (arn:...:table/<name>/stream/<label>).
            name = source.stream_arn.split(":table/", 1)[-1].split("/", 1)[0]
        try:
            description = self.runner.dynamodb.describe_table(TableName=name)["Table"]
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

    def start(self) -> None:
        function = self.runner.function(self.config)
        stream_arn = self.stream_arn()
        poller = self.runner.new_poller("stream")
        window = float(self.config.maximum_batching_window_in_seconds or 0)
        self.runner.spawn(
            f"stream-{self.config.name}", self.loop, function, stream_arn, self.config.batch_size, window, poller
        )

    def shard_ids(self, stream_arn: str) -> list[str]:
        shards: list[str] = []
        kwargs: dict[str, Any] = {"StreamArn": stream_arn}
        while True:
            description = self.runner.streams.describe_stream(**kwargs)["StreamDescription"]
            shards.extend(shard["ShardId"] for shard in description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            kwargs["ExclusiveStartShardId"] = last

    def loop(self, function: Function, stream_arn: str, batch_size: int, window: float, poller: Poller) -> None:
        runner = self.runner
        stopping = runner.stopping
        checkpoints = runner.checkpoints
        shards = ShardPositions(last_sequence=checkpoints.get(stream_arn) if checkpoints else {})
        next_refresh = 0.0
        while not stopping.is_set():
            if time.monotonic() >= next_refresh:
                try:
                    for shard_id in self.shard_ids(stream_arn):
                        if shard_id not in shards.iterators and shard_id not in shards.finished:
                            shards.iterators[shard_id] = self.shard_iterator(
                                stream_arn, shard_id, shards.last_sequence.get(shard_id)
                            )
                    next_refresh = time.monotonic() + SHARD_REFRESH_SECONDS
                except Exception:
                    logger.exception("%s: DescribeStream failed", function.name)
                    stopping.wait(1.0)
                    continue
            started_at = runner.poll_started(poller)
            found = False
            for shard_id in list(shards.iterators):
                if stopping.is_set():
                    return
                pending = shards.pending.setdefault(shard_id, [])
                try:
                    response = runner.streams.get_records(
                        ShardIterator=shards.iterators[shard_id], Limit=batch_size - len(pending)
                    )
                except Exception:
                    # E.g. an expired iterator: resume right after the last record delivered.
                    logger.exception("%s: GetRecords failed on %s", function.name, shard_id)
                    pending.clear()
                    stopping.wait(1.0)
                    try:
                        shards.iterators[shard_id] = self.shard_iterator(
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
                    pending.extend(self.record(r, stream_arn) for r in raw)
                next_iterator = response.get("NextShardIterator")
                # Like Lambda: deliver when the batch is full or the batching window has passed.
                if pending and (
                    len(pending) >= batch_size
                    or not next_iterator
                    or time.monotonic() - shards.pending_since[shard_id] >= window
                ):
                    if not self.deliver(function, list(pending)):
                        return  # stopping with the batch undelivered: a next runner delivers it
                    sequence_number = pending[-1]["dynamodb"]["SequenceNumber"]
                    shards.last_sequence[shard_id] = sequence_number
                    if checkpoints is not None:
                        checkpoints.save(stream_arn, shard_id, sequence_number)
                    pending.clear()
                if next_iterator:
                    shards.iterators[shard_id] = next_iterator
                else:  # a closed shard, read to its end
                    del shards.iterators[shard_id]
                    shards.finished.add(shard_id)
            waiting = any(shards.pending.values())
            runner.poll_result(poller, found or waiting, started_at)
            if not found:
                stopping.wait(runner.stream_poll_seconds)
            elif waiting:  # a batch gathering within its window: polled as Lambda polls a shard, 4 times a second
                stopping.wait(GATHERING_POLL_SECONDS)

    def shard_iterator(self, stream_arn: str, shard_id: str, after_sequence: str | None) -> str:
        kwargs: dict[str, Any] = {"StreamArn": stream_arn, "ShardId": shard_id}
        if after_sequence is None:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"  # the stack starts with empty tables
        else:
            kwargs["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
            kwargs["SequenceNumber"] = after_sequence
        iterator: str = self.runner.streams.get_shard_iterator(**kwargs)["ShardIterator"]
        return iterator

    def deliver(self, function: Function, records: list[dict[str, Any]]) -> bool:
        """Retry the same batch until it succeeds (a shard is processed in order); False when stopping."""
        attempt = 0
        while True:
            invocation = self.runner.invoke(function, {"Records": records}, work=True)
            if invocation.ok:
                return True
            if self.runner.stopping.is_set():
                return False
            attempt += 1
            self.runner.stopping.wait(min(STREAM_RETRY_MAX_SECONDS, 0.2 * 2**attempt))

    def record(self, record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
        """One record of the event, as Lambda shapes a stream record (its images as GetRecords sent them)."""
        source = record.get("dynamodb", {})
        dynamodb: dict[str, Any] = {
            "ApproximateCreationDateTime": epoch_seconds(source.get("ApproximateCreationDateTime")),
            "Keys": source.get("Keys", {}),
            "SequenceNumber": source["SequenceNumber"],
            "SizeBytes": source.get("SizeBytes", 0),
            "StreamViewType": source.get("StreamViewType"),
        }
        for image in ("NewImage", "OldImage"):
            if image in source:
                dynamodb[image] = source[image]
        shaped: dict[str, Any] = {
            "eventID": record["eventID"],
            "eventName": record["eventName"],
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": self.runner.region,
            "dynamodb": dynamodb,
            "eventSourceARN": stream_arn,
        }
        if "userIdentity" in record:
            shaped["userIdentity"] = record["userIdentity"]
        return shaped


def epoch_seconds(value: Any) -> int:
    """Lambda sends ApproximateCreationDateTime as epoch seconds; boto3 parses it into a datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp())
    if value is None:
        return int(time.time())
    return int(float(value))
