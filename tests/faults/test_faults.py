"""Faults injected where production meets them. Every test ends with `Harness.settle`: the campaign
completed, each recipient in exactly one final state, no number sent twice at the provider (a send that
may have happened is `unknown`, not resent), and the counters equal a recount."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from tests.faults.harness import Harness
from tests.utils import LambdaContext, recipient_rows

pytestmark = pytest.mark.faults


@pytest.mark.provider_timeout(1)
def test_a_lambda_running_out_of_time_mid_batch_hands_back_the_rest_and_nothing_is_lost(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPATCH_CONCURRENCY", "5")
    harness.provider.configure(latency_ms=300)
    harness.dispatch_context = lambda: LambdaContext(remaining_ms=2_500)  # room for about one chunk's sends
    campaign = harness.campaign(120)
    final = harness.run(campaign["id"])
    counters = harness.settle(final, 120)
    assert counters["succeeded"] == 120


@pytest.mark.provider_timeout(1)
def test_a_chunk_left_for_lack_of_time_more_often_than_max_receive_count_is_still_sent_not_dead_lettered(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPATCH_CONCURRENCY", "2")
    harness.provider.configure(latency_ms=300)
    invocations = {"n": 0}

    def short_invocation() -> LambdaContext:
        invocations["n"] += 1
        return LambdaContext(remaining_ms=1_700)  # room for a send or two per thread

    harness.dispatch_context = short_invocation
    campaign = harness.campaign(60)
    final = harness.run(campaign["id"])
    counters = harness.settle(final, 60)
    assert counters["succeeded"] == 60, "no recipient may be dead-lettered for the time it was left waiting"
    assert invocations["n"] > 8  # the dispatch queue's maxReceiveCount: hand-backs would have dead-lettered


def test_a_worker_killed_after_sending_leaves_unknown_not_a_resend(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.store import deliveries

    real, calls = deliveries.record_outcome, {"n": 0}
    lock = threading.Lock()

    def killed_every_25th(*args: Any, **kwargs: Any) -> bool:
        with lock:
            calls["n"] += 1
            dies = calls["n"] % 25 == 0
        if dies:
            raise SystemExit("injected: the Lambda was killed after the provider accepted")
        return real(*args, **kwargs)

    monkeypatch.setattr(deliveries, "record_outcome", killed_every_25th)
    campaign = harness.campaign(100)
    final = harness.run(campaign["id"])
    counters = harness.settle(final, 100)
    assert counters["unknown"] >= 1
    assert counters["succeeded"] + counters["unknown"] == 100


def test_a_dead_lettered_chunk_fails_its_unsent_recipients_and_the_campaign_completes(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.store import deliveries

    rows = recipient_rows(30)
    poisoned = rows[7]["phone"]
    real = deliveries.claim_first

    def poison(pk: str, rid: str, *args: Any) -> Any:
        if rid == poisoned:
            raise RuntimeError("injected: this recipient's claim always fails")
        return real(pk, rid, *args)

    monkeypatch.setattr(deliveries, "claim_first", poison)
    campaign = harness.campaign(rows)
    final = harness.run(campaign["id"])
    harness.settle(final, 30)
    outcome = {o["recipient_id"]: o for o in harness.outcomes(campaign["id"])}[poisoned]
    assert outcome["state"] == "failed" and outcome["last_error"].startswith("dead_lettered")
    assert poisoned.removeprefix("+") not in {m["to"] for m in harness.provider.messages()}


def test_a_chunk_redelivered_while_its_first_delivery_still_works_sends_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The message's visibility lapses while the first worker waits on its outcome write: SQS hands the
    # same chunk (same claim token) to a second worker. It must not send again; the first one's outcome
    # then wins over the second one's `unknown`.
    from chalicelib.store import deliveries

    real = deliveries.record_outcome
    first_arrived, second_done = threading.Event(), threading.Event()

    def slow_first(*args: Any, **kwargs: Any) -> bool:
        if not first_arrived.is_set() and threading.current_thread().name.startswith("send"):
            first_arrived.set()
            second_done.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(deliveries, "record_outcome", slow_first)
    campaign = harness.campaign(1)
    harness.release()
    message = harness._receive(harness.env["DISPATCH_QUEUE_URL"])
    from tests.utils import sqs_event

    first = threading.Thread(target=harness.app.dispatch, args=(sqs_event(message), LambdaContext()))
    first.start()
    assert first_arrived.wait(10)
    harness.app.dispatch(sqs_event(message), LambdaContext())  # the redelivery, while the first still works
    second_done.set()
    first.join(10)
    harness.sqs.delete_message(QueueUrl=harness.env["DISPATCH_QUEUE_URL"], ReceiptHandle=message[0]["ReceiptHandle"])
    final = harness.run(campaign["id"])
    counters = harness.settle(final, 1)
    assert counters["succeeded"] == 1


def test_stream_batches_out_of_order_across_shards_and_replayed_count_once(harness: Harness) -> None:
    harness.reverse_buckets = True
    harness.replay_stream = True
    campaign = harness.campaign(300, rate_per_second=1000)  # 7 buckets: 7 partition keys, 7 "shards"
    final = harness.run(campaign["id"])
    assert harness.settle(final, 300)["succeeded"] == 300


def test_oversized_chunks_are_split_and_a_recipient_too_large_for_any_message_fails_alone(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.store import queue

    monkeypatch.setattr(queue, "SQS_MAX_BYTES", 5_000)  # a small limit, so ordinary rows overflow it
    rows = recipient_rows(60)
    for row in rows:
        row["params"]["note"] = "x" * 600
    rows[5]["params"]["note"] = "y" * 4_000  # within the API's 4 KB cap, too large for this queue
    campaign = harness.campaign(rows)
    final = harness.run(campaign["id"])
    harness.settle(final, 60)
    outcome = {o["recipient_id"]: o for o in harness.outcomes(campaign["id"])}[rows[5]["phone"]]
    assert outcome["state"] == "failed" and outcome["last_error"].startswith("too_large")
    assert final["counters"]["succeeded"] == 59


def test_throttling_on_claim_and_outcome_writes_is_retried_without_a_resend(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.store import aws

    throttle_every = {"n": 0}
    lock = threading.Lock()

    in_a_row: Counter[bytes] = Counter()

    def throttle(params: dict[str, Any], **_: Any) -> Any:
        """Every third write to the deliveries table is throttled, one write at most twice in a row: the
        outcome write's own retries (4) must absorb it, whatever order the sending threads write in."""
        body = params.get("body", b"")  # the serialized request
        if b"DeliveriesTable" not in body:
            return None
        with lock:
            throttle_every["n"] += 1
            throttled = throttle_every["n"] % 3 == 0 and in_a_row[body] < 2
            in_a_row[body] = in_a_row[body] + 1 if throttled else 0
        if not throttled:
            return None
        error = {
            "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "injected"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        return _Response(400), error

    client = aws.dynamodb()
    for operation in ("PutItem", "UpdateItem"):
        client.meta.events.register(f"before-call.dynamodb.{operation}", throttle)
    try:
        campaign = harness.campaign(80)
        final = harness.run(campaign["id"])
    finally:
        for operation in ("PutItem", "UpdateItem"):
            client.meta.events.unregister(f"before-call.dynamodb.{operation}", throttle)
    assert throttle_every["n"] > 0
    assert harness.settle(final, 80)["succeeded"] == 80


class _Response:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.content = b""
        self.raw = None


def test_a_provider_answering_200_without_an_id_counts_as_sent(harness: Harness) -> None:
    harness.provider.configure(missing_uuid_rate=0.5)
    campaign = harness.campaign(40)
    final = harness.run(campaign["id"])
    assert harness.settle(final, 40)["succeeded"] == 40
    assert harness.provider.stats()["missing_uuid"] > 0


@pytest.mark.provider_timeout(1)
def test_a_provider_that_times_out_after_accepting_gets_unknown_never_a_resend(harness: Harness) -> None:
    harness.provider.configure(timeout_after_accept_rate=0.2, timeout_after_accept_ms=1_500)
    campaign = harness.campaign(40)
    final = harness.run(campaign["id"])
    counters = harness.settle(final, 40)
    timed_out = harness.provider.stats()["timed_out_after_accept"]
    assert counters["unknown"] == timed_out > 0
    assert counters["succeeded"] == 40 - timed_out


def test_a_provider_that_takes_ten_seconds_still_completes_every_recipient_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVIDER_TIMEOUT_SECONDS", "15")
    from chalicelib.settings import get_settings

    get_settings.cache_clear()
    harness.provider.configure(latency_ms=10_000)
    campaign = harness.campaign(60)
    final = harness.run(campaign["id"])
    assert harness.settle(final, 60)["succeeded"] == 60


def test_a_lost_stream_batch_keeps_the_campaign_running_until_a_recount_repairs_it(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.utils import ADMIN_TOKEN

    real, dropped = harness.app.stats, {"n": 0}

    def lose_the_second_batch(event: dict[str, Any], context: Any) -> None:
        dropped["n"] += 1
        if dropped["n"] != 2:  # past its retries, into StatsFailureQueue
            real(event, context)

    monkeypatch.setattr(harness.app, "stats", lose_the_second_batch)
    campaign = harness.campaign(50)
    stuck = harness.run(campaign["id"], rounds=40)
    assert stuck["status"] == "running"  # the counters never reach total
    other = harness.tenant.new_account("other")
    assert other.call("POST", f"/v1/campaigns/{campaign['id']}/recount").status_code == 404
    answer = harness.tenant.ok(
        "POST", f"/v1/accounts/{_account_of(harness)}/campaigns/{campaign['id']}/recount", key=ADMIN_TOKEN
    )
    assert answer["applied"] is True and answer["drift"]
    final = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")
    assert harness.settle(final, 50)["succeeded"] == 50


def _account_of(harness: Harness) -> str:
    from chalicelib.store import accounts

    return str(accounts.account_for_api_key(str(harness.tenant.api_key)))
