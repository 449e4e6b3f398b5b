"""The floor: what the same local AWS does when asked only for the calls a recipient cannot do without.

A fresh moto server (the project's infra/local/moto_server.py, started by infra.local.stack.start_moto)
with the resources of infra/template.json, and per recipient only:
- its share of the chunked SQS traffic: SendMessageBatch of 10 chunks of 50 recipients, paced at the
  campaign's rate; ReceiveMessage of up to 10 chunks; DeleteMessageBatch of what was received;
- a conditional PutItem that claims it and a conditional UpdateItem that records its outcome, on the
  deliveries table, under partition keys spread over buckets like the product's.
Consumers are as many threads as the stack's dispatch function may run at once (its
`reserved_concurrency` in .chalice/config.json, stage `local`). No provider call, no counters.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from chalice.config import Config as ChaliceConfig

from bench.aws_calls import AwsCallCounter
from bench.cpu import THIS_PROCESS, CpuMeter
from infra.local.resources import (
    DEFAULT_PREFIX,
    DEFAULT_TEMPLATE_PATH,
    QUEUE_TYPE,
    REPO_ROOT,
    create_resources,
    load_template,
    queue_name,
    resources_of_type,
    table_name,
)
from infra.local.stack import HOST, REGION, STAGE, free_port, start_moto

CHUNK = 50  # recipients per SQS message, as the product's release sends them
SQS_BATCH = 10  # messages per SendMessageBatch / ReceiveMessage / DeleteMessageBatch
# Mirrors chalicelib/store/keys.py when this was written: a bucket per 150 recipients/s of campaign rate.
RECIPIENTS_PER_BUCKET_PER_SECOND = 150
DELIVERIES_TABLE = "DeliveriesTable"
DISPATCH_QUEUE = "DispatchQueue"
CONFIG_PATH = REPO_ROOT / ".chalice" / "config.json"
# Lambda's SQS event source polls with 5 concurrent batches when nothing caps it.
UNCAPPED_CONCURRENCY = 5
LOCAL_AWS = "local AWS"  # moto's server, in the floor as in the campaign
FLOOR_CLIENT = "floor's client"


@dataclass
class FloorRun:
    recipients: int
    seconds: float
    concurrency: int
    buckets: int
    counts: AwsCallCounter
    load: tuple[float, float]  # the machine's 1-minute load average before and after
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by process (LOCAL_AWS, FLOOR_CLIENT)

    @property
    def rate(self) -> float:
        return self.recipients / self.seconds


def dispatch_concurrency(function: str = "dispatch", config_path: Path = CONFIG_PATH) -> int:
    """`reserved_concurrency` of the function in stage `local`, resolved the way chalice does."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    reserved = ChaliceConfig(STAGE, function, config_from_disk=config).reserved_concurrency
    return int(reserved) if reserved else UNCAPPED_CONCURRENCY


def bucket_count(rate_per_second: float) -> int:
    return max(1, math.ceil(rate_per_second / RECIPIENTS_PER_BUCKET_PER_SECOND))


def delivery_pk(account_id: str, campaign_id: str, recipient: str, buckets: int) -> str:
    """`<account>#C#<campaign>#<bucket>`, the bucket a stable hash of the recipient."""
    digest = hashlib.blake2b(recipient.encode(), digest_size=8).digest()
    return f"{account_id}#C#{campaign_id}#{int.from_bytes(digest, 'big') % buckets}"


def run_floor(rows: list[dict[str, Any]], *, rate: float, concurrency: int, timeout: float) -> FloorRun:
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as log_dir, _local_aws_environment():
        port = free_port()
        moto = start_moto(Path(log_dir), port)
        try:
            meter = CpuMeter({LOCAL_AWS: moto.popen.pid, FLOOR_CLIENT: THIS_PROCESS})
            return _run(f"http://{HOST}:{port}", rows, rate=rate, concurrency=concurrency, timeout=timeout, meter=meter)
        except Exception as exc:
            raise RuntimeError(f"{exc}; moto's log ends:\n{moto.tail()}") from exc
        finally:
            moto.stop()


def _run(
    endpoint: str, rows: list[dict[str, Any]], *, rate: float, concurrency: int, timeout: float, meter: CpuMeter
) -> FloorRun:
    create_resources(DEFAULT_TEMPLATE_PATH, DEFAULT_PREFIX, endpoint_url=endpoint, region=REGION)
    template = load_template(DEFAULT_TEMPLATE_PATH)
    config = BotoConfig(max_pool_connections=concurrency + 4, retries={"mode": "standard", "max_attempts": 5})
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION, config=config)
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION, config=config)
    counter = AwsCallCounter()
    counter.attach("floor", dynamodb, sqs)
    queue_properties = resources_of_type(template, QUEUE_TYPE)[DISPATCH_QUEUE].get("Properties")
    queue_url = sqs.get_queue_url(QueueName=queue_name(DEFAULT_PREFIX, DISPATCH_QUEUE, queue_properties))["QueueUrl"]
    table = table_name(DEFAULT_PREFIX, DELIVERIES_TABLE)

    buckets = bucket_count(rate)
    chunks = [rows[i : i + CHUNK] for i in range(0, len(rows), CHUNK)]
    floor = _Floor(dynamodb, sqs, table, queue_url, buckets, total=len(rows))
    before, load, cpu = counter.snapshot(), os.getloadavg()[0], meter.snapshot()
    started = time.monotonic()
    threads = [threading.Thread(target=floor.release, args=(chunks, rate, started), name="floor-release")]
    threads += [threading.Thread(target=floor.dispatch, name=f"floor-dispatch-{i}") for i in range(concurrency)]
    for thread in threads:
        thread.start()
    finished = floor.done.wait(timeout)
    floor.stop.set()
    for thread in threads:
        thread.join(10)
    if floor.errors:
        raise RuntimeError(f"the floor failed: {floor.errors[0]!r}") from floor.errors[0]
    if not finished:
        raise RuntimeError(f"the floor did not finish within {timeout:.0f} s ({floor.finished} of {len(rows)})")
    seconds, counts, cpu = floor.seconds - started, counter.since(before), meter.since(cpu)
    return FloorRun(len(rows), seconds, concurrency, buckets, counts, (load, os.getloadavg()[0]), cpu)


class _Floor:
    def __init__(self, dynamodb: Any, sqs: Any, table: str, queue_url: str, buckets: int, total: int) -> None:
        self.dynamodb, self.sqs, self.table, self.queue_url = dynamodb, sqs, table, queue_url
        self.buckets, self.total = buckets, total
        self.account, self.campaign = "acc_f1001f1001f1001f1001", "cmp_f1001f1001f1001f1001"
        self.lock = threading.Lock()
        self.finished = 0
        self.seconds = 0.0  # time.monotonic() when the last outcome was recorded and its chunk deleted
        self.done, self.stop = threading.Event(), threading.Event()
        self.errors: list[BaseException] = []

    def release(self, chunks: list[list[dict[str, Any]]], rate: float, started: float) -> None:
        with self._recording_errors():
            for n, start in enumerate(range(0, len(chunks), SQS_BATCH)):
                batch = chunks[start : start + SQS_BATCH]
                # Paced like the product's release: no faster than the campaign's rate.
                wait = started + n * SQS_BATCH * CHUNK / rate - time.monotonic()
                if wait > 0 and self.stop.wait(wait):
                    return
                entries = [{"Id": str(i), "MessageBody": self._body(chunk)} for i, chunk in enumerate(batch)]
                failed = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries).get("Failed")
                if failed:
                    raise RuntimeError(f"SendMessageBatch failed: {failed}")

    def _body(self, chunk: list[dict[str, Any]]) -> str:
        recipients = [{"phone": r["phone"], "params": r.get("params", {}), "previous_attempt": 0, "fresh": True}
                      for r in chunk]  # fmt: skip
        return json.dumps({"campaign": f"{self.account}#C#{self.campaign}", "recipients": recipients})

    def dispatch(self) -> None:
        with self._recording_errors():
            while not self.stop.is_set():
                messages = self.sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=SQS_BATCH, WaitTimeSeconds=1
                ).get("Messages", [])
                sent = 0
                for message in messages:
                    for recipient in json.loads(message["Body"])["recipients"]:
                        sent += self._claim_and_record(recipient)
                if messages:
                    self.sqs.delete_message_batch(
                        QueueUrl=self.queue_url,
                        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                    )
                with self.lock:
                    self.finished += sent
                    if sent and self.finished >= self.total:
                        self.seconds = time.monotonic()
                        self.done.set()

    def _claim_and_record(self, recipient: dict[str, Any]) -> int:
        """1 when this claims and records the recipient; 0 when a copy of its chunk (SQS redelivers one
        whose visibility timeout a loaded machine outlasts) claimed it first, which the product skips too."""
        phone = recipient["phone"]
        pk = {"S": delivery_pk(self.account, self.campaign, phone, self.buckets)}
        now = {"N": repr(time.time())}
        try:
            self.dynamodb.put_item(
                TableName=self.table,
                Item={
                    "pk": pk,
                    "sk": {"S": phone},
                    "state": {"S": "in_flight"},
                    "attempt": {"N": "1"},
                    "params": {"M": {k: {"S": str(v)} for k, v in recipient["params"].items()}},
                    "claimed_by": {"S": "floor"},
                    "updated_at": now,
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return 0
        self.dynamodb.update_item(
            TableName=self.table,
            Key={"pk": pk, "sk": {"S": phone}},
            UpdateExpression="SET #st = :done, provider_message_id = :mid, updated_at = :now",
            ConditionExpression="#st = :in_flight AND attempt = :attempt",
            ExpressionAttributeNames={"#st": "state"},
            ExpressionAttributeValues={
                ":done": {"S": "succeeded"},
                ":in_flight": {"S": "in_flight"},
                ":attempt": {"N": "1"},
                ":mid": {"S": f"floor-{phone}"},
                ":now": now,
            },
        )
        return 1

    @contextmanager
    def _recording_errors(self) -> Iterator[None]:
        try:
            yield
        except BaseException as exc:
            self.errors.append(exc)
            self.stop.set()
            self.done.set()


@contextmanager
def _local_aws_environment() -> Iterator[None]:
    """Credentials and region for clients of local AWS, restored afterwards."""
    variables = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }
    saved = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
