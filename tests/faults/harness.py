"""Drives a campaign through the real handlers on moto, one round at a time, as Lambda's event source
mappings and the schedule would: the release tick and its jobs, the dispatch queue (failed records come
back, and after maxReceiveCount go to the dead-letter queue, by moto's own redrive), the dead-letter
consumer, and the deliveries stream into the stats function.

`settle()` then checks what every fault test ends with: the campaign completed, every recipient in
exactly one final state, each number sent at most once at the provider, and the counters equal to a
recount."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3

from infra.local.fake_provider import FakeProvider
from tests.utils import Api, LambdaContext, campaign_body, recipient_rows, sqs_event

FINAL = {"succeeded", "failed", "unknown", "skipped", "expired"}
# A round that needs more dispatch invocations than this is not making progress (a livelock fails the
# test at once instead of running into pytest's timeout).
MAX_INVOCATIONS_PER_ROUND = 200
MAX_STREAM_PAGES = 200  # of up to 1,000 records: more than any fault test writes


@dataclass
class Harness:
    tenant: Api
    env: dict[str, str]
    app: Any
    provider: FakeProvider
    dispatch_context: Callable[[], LambdaContext] = LambdaContext
    # Stream records are handed to `stats` in this order of their buckets (out of order across shards).
    reverse_buckets: bool = False
    # Dispatch invocations run at once in a round (each takes up to 4 chunks).
    dispatch_invocations: int = 1
    replay_stream: bool = False
    # The event log's stream consumer and the webhook queue's consumer run too (decision 41).
    with_events: bool = False
    _iterators: dict[str, str] = field(default_factory=dict)
    _stream_arn: str = ""

    def __post_init__(self) -> None:
        self.sqs = boto3.client("sqs", region_name="us-east-1")
        self.streams = boto3.client("dynamodbstreams", region_name="us-east-1")
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        self._stream_arn = dynamodb.describe_table(TableName=self.env["DELIVERIES_TABLE"])["Table"]["LatestStreamArn"]

    # -- setting up ------------------------------------------------------------------------------

    def campaign(self, recipients: int | list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
        rows = recipient_rows(recipients) if isinstance(recipients, int) else recipients
        listed = self.tenant.ok("POST", "/v1/lists", {"name": "faults"}, status=201)
        for start in range(0, len(rows), 10_000):
            self.tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows[start : start + 10_000]})
        body = campaign_body(listed["id"], **{"rate_per_second": 200, **overrides})
        created = self.tenant.ok("POST", "/v1/campaigns", body, status=201)
        return dict(self.tenant.ok("POST", f"/v1/campaigns/{created['id']}/start"))

    # -- one round of every event source ---------------------------------------------------------

    def run(
        self, campaign_id: str, *, rounds: int = 200, on_round: Callable[[int], None] | None = None
    ) -> dict[str, Any]:
        """Rounds until the campaign is completed or expired (or `rounds` ran out); the campaign as last read."""
        for number in range(rounds):
            if on_round:
                on_round(number)
            self.release()
            self.dispatch()
            self.dead_letters()
            self.stream()
            if self.with_events:
                self.webhooks()
            current = self.tenant.ok("GET", f"/v1/campaigns/{campaign_id}")
            if current["status"] in ("completed", "expired"):
                return dict(current)
            time.sleep(0.05)
        return dict(current)

    def release(self) -> None:
        from chalicelib.workers.release import fan_out

        fan_out()
        jobs = self._receive(self.env["RELEASE_QUEUE_URL"])
        if jobs:
            answer = self.app.release(sqs_event(jobs), None)
            self._settle_messages(self.env["RELEASE_QUEUE_URL"], jobs, answer)

    def dispatch(self) -> None:
        url = self.env["DISPATCH_QUEUE_URL"]
        for _ in range(MAX_INVOCATIONS_PER_ROUND):
            batches = [batch for _ in range(self.dispatch_invocations) if (batch := self._receive(url, limit=4))]
            if not batches:
                return
            if len(batches) == 1:
                self._dispatch_batch(url, batches[0])
            else:  # invocations at once, as the event source mapping runs them up to the reserved concurrency
                with ThreadPoolExecutor(len(batches)) as invocations:
                    list(invocations.map(lambda batch: self._dispatch_batch(url, batch), batches))
        raise AssertionError(f"dispatch is spinning: chunks still queued after {MAX_INVOCATIONS_PER_ROUND} invocations")

    def _dispatch_batch(self, url: str, messages: list[dict[str, Any]]) -> None:
        try:
            answer = self.app.dispatch(sqs_event(messages), self.dispatch_context())
        except Exception:  # the invocation died: nothing deleted, everything comes back
            answer = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in messages]}
        self._settle_messages(url, messages, answer)

    def webhooks(self) -> None:
        """Webhook deliveries until none is waiting (a retry queued with no delay comes in the same call)."""
        url = self.env["WEBHOOK_QUEUE_URL"]
        for _ in range(MAX_INVOCATIONS_PER_ROUND):
            messages = self._receive(url)
            if not messages:
                return
            self._settle_messages(url, messages, self.app.webhooks(sqs_event(messages), None))

    def dead_letters(self) -> None:
        url = self._dead_letter_url()
        messages = self._receive(url)
        if messages:
            answer = self.app.dead_letters(sqs_event(messages), None)
            self._settle_messages(url, messages, answer)

    def stream(self) -> None:
        records = self._new_stream_records()
        if not records:
            return
        from chalicelib.store import keys

        by_bucket: dict[int, list[dict[str, Any]]] = {}
        for record in records:
            _, bucket = keys.split_delivery_pk(record["dynamodb"]["Keys"]["pk"]["S"])
            by_bucket.setdefault(bucket, []).append(record)
        order = sorted(by_bucket, reverse=self.reverse_buckets)
        for bucket in order:  # each bucket as its own shard's batch
            self.app.stats({"Records": by_bucket[bucket]}, None)
            if self.with_events:
                self.app.events({"Records": by_bucket[bucket]}, None)
        if self.replay_stream:
            for bucket in order:
                self.app.stats({"Records": by_bucket[bucket]}, None)

    # -- the checks every fault test ends with ---------------------------------------------------

    def settle(self, campaign: dict[str, Any], recipients: int) -> dict[str, Any]:
        """Assert the end state; returns the final counters."""
        assert campaign["status"] == "completed", campaign
        outcomes = self.outcomes(campaign["id"])
        assert len(outcomes) == recipients, "every recipient has exactly one delivery"
        states = Counter(o["state"] for o in outcomes)
        assert set(states) <= FINAL, states
        stats = self.provider.stats()
        per_number = Counter(m["to"] for m in self.provider.messages())
        assert stats["duplicates"] == 0 and set(per_number.values()) <= {1}, "a number got the message twice"
        succeeded = {o["destination"].removeprefix("+") for o in outcomes if o["state"] == "succeeded"}
        unknown = {o["destination"].removeprefix("+") for o in outcomes if o["state"] == "unknown"}
        assert succeeded <= set(per_number) <= succeeded | unknown
        counters = campaign["counters"]
        assert {k: counters[k] for k in FINAL} == {k: states.get(k, 0) for k in FINAL}
        assert counters["total"] == recipients and counters["queued"] == counters["in_flight"] == 0
        recount = self.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/recount")
        assert recount["drift"] == {} and recount["after"] == counters, recount
        return dict(counters)

    def outcomes(self, campaign_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            page = self.tenant.ok("GET", f"/v1/campaigns/{campaign_id}/recipients?limit=1000{token}")
            items += page["items"]
            if not page["next_page_token"]:
                return items
            token = f"&page_token={page['next_page_token']}"

    # -- plumbing --------------------------------------------------------------------------------

    def _receive(self, url: str, limit: int = 10) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=limit, AttributeNames=["All"])
        messages: list[dict[str, Any]] = answer.get("Messages", [])
        return messages

    def _settle_messages(self, url: str, messages: list[dict[str, Any]], answer: Any) -> None:
        """Delete what succeeded; what failed is visible again at once (no 6-minute wait in a test)."""
        failed = {f["itemIdentifier"] for f in (answer or {}).get("batchItemFailures", [])}
        for message in messages:
            if message["MessageId"] in failed:
                self.sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def _dead_letter_url(self) -> str:
        return str(self.sqs.get_queue_url(QueueName=self.env["DISPATCH_QUEUE_URL"].rsplit("/", 1)[1].replace(
            "DispatchQueue", "DispatchDeadLetterQueue"))["QueueUrl"])  # fmt: skip

    def _new_stream_records(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        shards = self.streams.describe_stream(StreamArn=self._stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self.streams.get_shard_iterator(
                    StreamArn=self._stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            for _ in range(MAX_STREAM_PAGES):
                answer = self.streams.get_records(ShardIterator=self._iterators[shard_id])
                self._iterators[shard_id] = answer["NextShardIterator"]
                if not answer["Records"]:
                    break
                for record in answer["Records"]:
                    when = record["dynamodb"].get("ApproximateCreationDateTime")
                    if isinstance(when, datetime):
                        record["dynamodb"]["ApproximateCreationDateTime"] = int(when.timestamp())
                    records.append(record)
            else:
                raise AssertionError(f"the stream kept answering records after {MAX_STREAM_PAGES} pages")
        return records
