"""Dispatch through the Chalice handlers: duplicates and redeliveries send nothing twice, and a send
that may have happened is recorded `unknown` rather than resent."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from infra.local.fake_provider import FakeProvider
from tests.utils import (
    Api,
    LambdaContext,
    campaign_body,
    never_early,
    receive_all,
    recipient_rows,
    record_send_times,
    run_release_jobs,
    spacing,
    sqs_event,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def start(tenant: Api, aws_env: dict[str, str], chalice_app: Any) -> Any:
    def started_campaign(recipients: int, **overrides: Any) -> dict[str, Any]:
        listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
        tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": recipient_rows(recipients)})
        campaign = tenant.ok("POST", "/v1/campaigns", campaign_body(listed["id"], **overrides), status=201)
        started = tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/start")
        assert run_release_jobs(chalice_app, aws_env["RELEASE_QUEUE_URL"]) == 1
        return dict(started)

    return started_campaign


def outcomes(tenant: Api, campaign_id: str) -> dict[str, dict[str, Any]]:
    """The recipients the campaign has a delivery for (not the `pending` rest of its audience)."""
    page = tenant.ok("GET", f"/v1/campaigns/{campaign_id}/recipients?limit=1000")
    return {item["recipient_id"]: item for item in page["items"] if item["state"] != "pending"}


def sent_once_each(provider: FakeProvider, expected: int) -> None:
    stats = provider.stats()
    assert (stats["accepted"], stats["unique_recipients"], stats["duplicates"]) == (expected, expected, 0)


def test_start_queues_a_release_job_whose_release_queues_chunks_that_carry_the_recipients(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, start: Any
) -> None:
    campaign = start(30, rate_per_second=20)
    bodies = [json.loads(m["Body"]) for m in receive_all(aws_env["DISPATCH_QUEUE_URL"])]
    assert campaign["status"] == "running"
    zero = {"in_flight": 0, "succeeded": 0, "failed": 0, "unknown": 0, "skipped": 0, "skipped_by_reason": {}}
    zero |= {"expired": 0, "not_included": 0, "delivered": 0, "read": 0, "undelivered": 0}
    zero |= {"clicked": 0, "clicks": 0, "converted": 0, "conversions": 0, "replied": 0}
    assert campaign["counters"] == {"total": 30, "queued": 30, **zero}
    # At 20/s the first release covers its first window (1 s on the local stage) at the guarded rate
    # (decision 26: 19.4/s), and the one recipient's worth a start carries over: one chunk of 20.
    assert [len(b["recipients"]) for b in bodies] == [20]
    assert bodies[0]["claim"]  # the claim token travels in the body: a redrive keeps it
    assert {"id", "destinations", "attributes", "previous_attempt", "fresh"} <= set(bodies[0]["recipients"][0])
    from chalicelib.workers.release import fan_out

    time.sleep(1.0)
    assert fan_out() == 1  # the tick: one release job per running campaign
    assert run_release_jobs(chalice_app, aws_env["RELEASE_QUEUE_URL"]) == 1
    later = [json.loads(m["Body"]) for m in receive_all(aws_env["DISPATCH_QUEUE_URL"])]
    assert [len(b["recipients"]) for b in later] == [10]


def test_duplicate_sqs_delivery_sends_once(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider, start: Any
) -> None:
    campaign = start(12)
    event = sqs_event(receive_all(aws_env["DISPATCH_QUEUE_URL"]))
    assert chalice_app.dispatch(event, LambdaContext()) == {"batchItemFailures": []}
    assert chalice_app.dispatch(event, LambdaContext()) == {"batchItemFailures": []}  # SQS delivered it again
    sent_once_each(provider, 12)
    assert {o["state"] for o in outcomes(tenant, campaign["id"]).values()} == {"succeeded"}


def test_a_chunk_released_twice_sends_nothing_twice(
    aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider, start: Any
) -> None:
    start(5)
    message = receive_all(aws_env["DISPATCH_QUEUE_URL"])[0]
    chalice_app.dispatch(sqs_event([message]), LambdaContext())
    body = json.loads(message["Body"])
    again = dict(message, MessageId="another-message-id", Body=json.dumps({**body, "claim": "another-claim"}))
    chalice_app.dispatch(sqs_event([again]), LambdaContext())  # what a re-run of the pacer would queue
    sent_once_each(provider, 5)


def test_a_crash_after_sending_fails_only_that_record_and_its_redelivery_records_unknown_without_resending(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider, start: Any, monkeypatch: Any
) -> None:
    campaign = start(10)
    messages = receive_all(aws_env["DISPATCH_QUEUE_URL"])
    from chalicelib.store import deliveries

    real = deliveries.record_outcome
    calls = {"n": 0}

    def crash_on_the_fourth(*args: Any, **kwargs: Any) -> bool:
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("injected: worker died after the provider accepted")
        return real(*args, **kwargs)

    monkeypatch.setattr(deliveries, "record_outcome", crash_on_the_fourth)
    answer = chalice_app.dispatch(sqs_event(messages), LambdaContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
    stuck = [o for o in outcomes(tenant, campaign["id"]).values() if o["state"] == "in_flight"]
    assert len(stuck) == 1

    monkeypatch.setattr(deliveries, "record_outcome", real)
    assert chalice_app.dispatch(sqs_event(messages), LambdaContext()) == {"batchItemFailures": []}
    final = outcomes(tenant, campaign["id"])
    assert sorted(o["state"] for o in final.values()) == ["succeeded"] * 9 + ["unknown"]
    assert final[stuck[0]["recipient_id"]]["state"] == "unknown"
    assert "not resent" in final[stuck[0]["recipient_id"]]["last_error"]
    sent_once_each(provider, 10)  # Vonage takes no idempotency key: the ambiguous one was not sent again


def test_a_channel_that_honours_idempotency_keys_finishes_a_crashed_claim_with_the_same_key(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider, start: Any, monkeypatch: Any
) -> None:
    from chalicelib.channels.vonage import VonageMessages
    from chalicelib.store import deliveries

    provider.configure(dedup_client_ref=True)  # a provider that deduplicates on client_ref
    monkeypatch.setattr(VonageMessages, "honours_idempotency_key", True)
    campaign = start(4)
    messages = receive_all(aws_env["DISPATCH_QUEUE_URL"])
    real = deliveries.record_outcome

    def crash(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("injected: worker died after the provider accepted")

    monkeypatch.setattr(deliveries, "record_outcome", crash)
    chalice_app.dispatch(sqs_event(messages), LambdaContext())
    monkeypatch.setattr(deliveries, "record_outcome", real)
    chalice_app.dispatch(sqs_event(messages), LambdaContext())
    final = outcomes(tenant, campaign["id"])
    assert {(o["state"], o["attempts"]) for o in final.values()} == {("succeeded", 1)}
    stats = provider.stats()
    assert (stats["accepted"], stats["duplicates"]) == (4, 4)  # resent with the same keys, recognised


def test_a_200_without_a_message_id_is_a_success_with_no_id(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider, start: Any
) -> None:
    provider.configure(missing_uuid_rate=1.0)
    campaign = start(3)
    assert chalice_app.dispatch(sqs_event(receive_all(aws_env["DISPATCH_QUEUE_URL"])), LambdaContext()) == {
        "batchItemFailures": []
    }
    final = outcomes(tenant, campaign["id"])
    assert {(o["state"], o["provider_message_id"]) for o in final.values()} == {("succeeded", None)}
    sent_once_each(provider, 3)


def test_a_provider_that_times_out_after_accepting_gets_unknown_not_a_resend(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider, start: Any, monkeypatch: Any
) -> None:

    monkeypatch.setenv("PROVIDER_TIMEOUT_SECONDS", "0.5")
    from chalicelib.settings import get_settings

    get_settings.cache_clear()
    provider.configure(timeout_after_accept_rate=1.0, timeout_after_accept_ms=2000)
    campaign = start(3, retry_policy={"max_attempts": 5, "initial_delay_seconds": 1})
    chalice_app.dispatch(sqs_event(receive_all(aws_env["DISPATCH_QUEUE_URL"])), LambdaContext())
    final = outcomes(tenant, campaign["id"])
    assert {(o["state"], o["attempts"]) for o in final.values()} == {("unknown", 1)}
    sent_once_each(provider, 3)


def test_transient_failures_are_retried_per_policy_then_fail(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider, start: Any
) -> None:
    from chalicelib.operations.pacer import release_campaign
    from tests.integration.test_stats import pk_of

    provider.configure(transient_failure_rate=1.0)
    campaign = start(3, retry_policy={"max_attempts": 2, "initial_delay_seconds": 1})
    chalice_app.dispatch(sqs_event(receive_all(aws_env["DISPATCH_QUEUE_URL"])), LambdaContext())
    first = outcomes(tenant, campaign["id"])
    assert {o["state"] for o in first.values()} == {"queued"}
    assert all(o["next_attempt_at"] and "503" in o["last_error"] for o in first.values())

    apply_stream(chalice_app)
    assert release_campaign(pk_of(tenant, campaign), now=time.time() + 5) == 3
    chalice_app.dispatch(sqs_event(receive_all(aws_env["DISPATCH_QUEUE_URL"])), LambdaContext())
    final = outcomes(tenant, campaign["id"])
    assert {(o["state"], o["attempts"]) for o in final.values()} == {("failed", 2)}
    assert provider.stats()["transient_failures"] == 6
    assert provider.messages() == []


def apply_stream(chalice_app: Any) -> None:
    """Feed the deliveries table's stream to the stats function, as its event source mapping would."""
    from tests.integration.test_stats import stream_records

    records = stream_records()
    if records:
        chalice_app.stats({"Records": records}, None)


def test_chunks_of_a_paused_campaign_are_kept_and_sent_after_resume(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider, start: Any
) -> None:
    campaign = start(8)
    messages = receive_all(aws_env["DISPATCH_QUEUE_URL"])
    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/pause")
    chalice_app.dispatch(sqs_event(messages), LambdaContext())
    assert provider.messages() == []
    assert {o["state"] for o in outcomes(tenant, campaign["id"]).values()} == {"queued"}

    apply_stream(chalice_app)  # the pacer learns from the counters that recipients wait
    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/resume")
    assert run_release_jobs(chalice_app, aws_env["RELEASE_QUEUE_URL"]) == 1  # parked recipients go first
    chalice_app.dispatch(sqs_event(receive_all(aws_env["DISPATCH_QUEUE_URL"])), LambdaContext())
    sent_once_each(provider, 8)
    assert {(o["state"], o["attempts"]) for o in outcomes(tenant, campaign["id"]).values()} == {("succeeded", 1)}


def test_a_recipient_missing_a_template_variable_fails_alone(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider
) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    rows = recipient_rows(3)
    rows[1]["params"] = {}
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows})
    # Started knowingly: the check before the start counts who lacks a variable (test_variable_check.py).
    body = campaign_body(listed["id"], allow_missing_variables=True)
    campaign = tenant.ok("POST", "/v1/campaigns", body, status=201)
    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/start")
    run_release_jobs(chalice_app, aws_env["RELEASE_QUEUE_URL"])
    chalice_app.dispatch(sqs_event(receive_all(aws_env["DISPATCH_QUEUE_URL"])), LambdaContext())
    final = outcomes(tenant, campaign["id"])
    assert final[rows[1]["phone"]]["state"] == "failed"
    assert "first_name" in final[rows[1]["phone"]]["last_error"]
    assert sorted(m["text"] for m in provider.messages()) == ["Hi R0, 20% off today.", "Hi R2, 20% off today."]


def test_a_text_over_the_provider_s_limit_or_a_render_past_a_bound_fails_before_any_send(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider
) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    rows = recipient_rows(3)
    rows[0]["params"] = {"first_name": "A" * 990, "loops": 0}  # "Hi " + 990 + ", 20% off today." = 1,009 characters
    rows[1]["params"] = {"first_name": "x", "loops": 20_000}
    rows[2]["params"] = {**rows[2]["params"], "loops": 3}
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows})
    template = "Hi {{ first_name }}, 20% off today.{% for i in (1..loops) %}{% endfor %}"
    campaign = tenant.ok("POST", "/v1/campaigns", campaign_body(listed["id"], template=template), status=201)
    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/start")
    run_release_jobs(chalice_app, aws_env["RELEASE_QUEUE_URL"])
    chalice_app.dispatch(sqs_event(receive_all(aws_env["DISPATCH_QUEUE_URL"])), LambdaContext())
    final = outcomes(tenant, campaign["id"])
    too_long, looping, fine = (final[row["phone"]] for row in rows)
    assert too_long["state"] == "failed"
    assert too_long["last_error"] == "text: 1,009 characters, over the provider's limit of 1,000"
    assert looping["state"] == "failed" and "loop iteration limit" in looping["last_error"]
    assert fine["state"] == "succeeded"
    assert [m["to"] for m in provider.messages()] == [rows[2]["phone"].removeprefix("+")]


def test_a_chunk_redelivered_while_paused_settles_what_it_had_claimed_as_unknown(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider, start: Any, monkeypatch: Any
) -> None:
    campaign = start(6)
    messages = receive_all(aws_env["DISPATCH_QUEUE_URL"])
    from chalicelib.store import deliveries

    real = deliveries.record_outcome

    def crash(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("injected: worker died after the provider accepted")

    monkeypatch.setattr(deliveries, "record_outcome", crash)
    chalice_app.dispatch(sqs_event(messages), LambdaContext())  # every recipient claimed, sent, not recorded
    monkeypatch.setattr(deliveries, "record_outcome", real)
    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/pause")
    assert chalice_app.dispatch(sqs_event(messages), LambdaContext()) == {"batchItemFailures": []}
    states = {o["state"] for o in outcomes(tenant, campaign["id"]).values()}
    assert states == {"unknown"}, "nothing may stay in flight behind a pause"
    sent_once_each(provider, 6)


def _three_chunks(tenant: Api, aws_env: dict[str, str], start: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from chalicelib.operations.pacer import release_campaign
    from tests.integration.test_stats import pk_of

    campaign = start(30, rate_per_second=10)  # chunks of 10: one now, the next two on the next releases
    for ahead in (1, 2):
        release_campaign(pk_of(tenant, campaign), now=time.time() + ahead)
    time.sleep(2.5)  # their DelaySeconds
    messages = receive_all(aws_env["DISPATCH_QUEUE_URL"])
    assert len(messages) == 3
    return campaign, messages


def test_out_of_time_queues_the_chunks_again_as_new_messages_unclaimed(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider, start: Any
) -> None:
    campaign, messages = _three_chunks(tenant, aws_env, start)
    # 14 s left: less than a send (15 s provider timeout) plus the 5 s margin, so nothing starts.
    answer = chalice_app.dispatch(sqs_event(messages), LambdaContext(remaining_ms=14_000))
    assert answer == {"batchItemFailures": []}  # done with: their copies are queued, at receive count 0
    assert outcomes(tenant, campaign["id"]) == {}  # nothing claimed: the copies send them normally
    assert provider.stats()["requests"] == 0
    copies = receive_all(aws_env["DISPATCH_QUEUE_URL"])
    assert sorted(m["Body"] for m in copies) == sorted(m["Body"] for m in messages)
    assert chalice_app.dispatch(sqs_event(copies), LambdaContext()) == {"batchItemFailures": []}
    assert provider.stats()["accepted"] == 30 and provider.stats()["duplicates"] == 0


def test_out_of_time_when_the_copies_cannot_be_queued_hands_the_chunks_back_visible_at_once(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider, start: Any, monkeypatch: Any
) -> None:
    from chalicelib.store import queue

    campaign, messages = _three_chunks(tenant, aws_env, start)

    def refused(messages: list[tuple[str, int]]) -> None:
        raise queue.QueueSendError("injected: SendMessageBatch failed", sent=1)

    monkeypatch.setattr(queue, "send_chunks_encoded", refused)
    answer = chalice_app.dispatch(sqs_event(messages), LambdaContext(remaining_ms=14_000))
    # The first copy went out, so its record is done; the other two are handed back.
    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == [m["MessageId"] for m in messages[1:]]
    assert outcomes(tenant, campaign["id"]) == {}
    assert len(receive_all(aws_env["DISPATCH_QUEUE_URL"])) == 2  # visible again now, not after 9 minutes


def test_a_completion_lost_to_a_race_is_made_by_the_next_release(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, start: Any, monkeypatch: Any
) -> None:
    from chalicelib.operations.pacer import release_campaign
    from chalicelib.workers import stats
    from tests.integration.test_stats import pk_of

    campaign = start(2)
    chalice_app.dispatch(sqs_event(receive_all(aws_env["DISPATCH_QUEUE_URL"])), LambdaContext())
    monkeypatch.setattr(stats, "complete_if_done", lambda campaign: False)  # a pause won the race
    apply_stream(chalice_app)
    assert tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")["status"] == "running"
    release_campaign(pk_of(tenant, campaign))
    final = tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")
    assert final["status"] == "completed"
    assert final["counters"]["succeeded"] == 2


def test_chunks_sent_by_two_workers_at_once_keep_the_campaign_s_rate_between_them(
    tenant: Api,
    aws_env: dict[str, str],
    chalice_app: Any,
    provider: FakeProvider,
    start: Any,
    atomic_moto: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two chunks of a 10/s campaign handed to two invocations at the same moment (a late chunk meeting the
    next one): each takes its span of the campaign's pacing ledger, so the ten sends are given places 0.1 s
    apart, one chunk after the other, and none goes out before its place."""
    import threading

    planned = record_send_times(monkeypatch)
    start(10, rate_per_second=10)
    [message] = receive_all(aws_env["DISPATCH_QUEUE_URL"])
    chunk = json.loads(message["Body"])
    halves = [{**chunk, "claim": f"half-{n}", "recipients": chunk["recipients"][n * 5 : n * 5 + 5]} for n in (0, 1)]
    events = [sqs_event([{**message, "MessageId": f"m{n}", "Body": json.dumps(h)}]) for n, h in enumerate(halves)]
    workers = [threading.Thread(target=chalice_app.dispatch, args=(e, LambdaContext())) for e in events]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    sent_once_each(provider, 10)
    # Without the ledger each chunk starts now: the two chunks' places pair up.
    # At the guarded rate (decision 26): 9.7/s.
    assert len(planned) == 10 and spacing(list(planned.values())) == pytest.approx(1 / 9.7, abs=0.001)
    never_early(planned, provider.messages())


def test_a_chunk_whose_paced_start_is_far_off_is_queued_again_until_then(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider, start: Any
) -> None:
    """The campaign's ledger is taken 20 s ahead (other workers' chunks): the chunk does not hold its worker
    for that long; it is queued again, delayed, with its start, and sends nothing now."""
    from chalicelib.store import pace

    campaign = start(4, rate_per_second=1)
    [message] = receive_all(aws_env["DISPATCH_QUEUE_URL"])
    now = time.time()
    pk = json.loads(message["Body"])["campaign"]
    assert pace.campaign_span(pk, 20, 1.0, now) == pytest.approx(now)  # the next 20 s are taken
    assert chalice_app.dispatch(sqs_event([message]), LambdaContext()) == {"batchItemFailures": []}
    assert provider.stats()["accepted"] == 0
    assert receive_all(aws_env["DISPATCH_QUEUE_URL"]) == []  # delayed: not visible yet
    assert tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")["counters"]["queued"] == 4
    from chalicelib.store import aws

    attributes = aws.sqs().get_queue_attributes(
        QueueUrl=aws_env["DISPATCH_QUEUE_URL"], AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"


def test_a_paused_campaign_s_chunk_is_parked_at_once_without_taking_a_span(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider, start: Any
) -> None:
    """Nothing is sent for a paused campaign, so its chunk neither waits for its places nor moves the ledger
    (the resume would otherwise start behind the span the parking took)."""
    from chalicelib.settings import get_settings
    from chalicelib.store import aws, pace

    campaign = start(10, rate_per_second=10)
    [message] = receive_all(aws_env["DISPATCH_QUEUE_URL"])
    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/pause")
    assert chalice_app.dispatch(sqs_event([message]), LambdaContext()) == {"batchItemFailures": []}
    assert provider.stats()["accepted"] == 0
    ledger = aws.dynamodb().get_item(
        TableName=get_settings().main_table,
        Key=aws.to_item({"pk": json.loads(message["Body"])["campaign"], "sk": pace.PACE}),
    )
    assert "Item" not in ledger
    assert tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")["counters"]["queued"] == 10


def test_a_slow_send_does_not_hold_back_the_other_chunks_of_its_batch(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider, start: Any, monkeypatch: Any
) -> None:
    """Every chunk of a batch is started before any is waited for: while the first chunk's first send hangs,
    the next chunks' sends go out in their places (waited for chunk by chunk, none went before it ended)."""
    import threading

    from chalicelib.workers import dispatch

    campaign, messages = _three_chunks(tenant, aws_env, start)
    chunk_of = {r["id"]: n for n, m in enumerate(messages) for r in json.loads(m["Body"])["recipients"]}
    send_once, lock = dispatch._send_once, threading.Lock()
    started: list[tuple[int, float]] = []  # (chunk, when the send began)
    slow_ended: list[float] = []

    def hanging_first(channel: Any, message: Any) -> Any:
        with lock:
            first = not started
            started.append((chunk_of[message.tags["recipient"]], time.monotonic()))
        if first:
            time.sleep(4)  # the provider holds the first send; the rest of the campaign's span is 3 s
            slow_ended.append(time.monotonic())
        return send_once(channel, message)

    monkeypatch.setattr(dispatch, "_send_once", hanging_first)
    assert chalice_app.dispatch(sqs_event(messages), LambdaContext()) == {"batchItemFailures": []}
    assert started[0][0] == 0 and len(started) == 30
    during = {chunk for chunk, at in started[1:] if at < slow_ended[0]}
    assert during == {0, 1, 2}  # the other chunks went out while the first chunk's first send hung
    assert provider.stats()["accepted"] == 30 and provider.stats()["duplicates"] == 0
    assert len(outcomes(tenant, campaign["id"])) == 30
