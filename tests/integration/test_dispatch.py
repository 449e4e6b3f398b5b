"""Dispatch through the Chalice handlers: duplicates and redeliveries send nothing twice."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from infra.local.fake_provider import FakeProvider
from tests.utils import Api, campaign_body, recipient_rows, sqs_event

pytestmark = pytest.mark.integration


class Context:
    aws_request_id = "test"
    function_name = "dispatch"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def started_campaign(tenant: Api, recipients: int, **overrides: Any) -> dict[str, Any]:
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": recipient_rows(recipients)})
    campaign = tenant.ok("POST", "/v1/campaigns", campaign_body(listed["id"], **overrides), status=201)
    return tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/start")


def receive_all(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        messages.extend(batch)
    return messages


def outcomes(tenant: Api, campaign_id: str) -> dict[str, dict[str, Any]]:
    page = tenant.ok("GET", f"/v1/campaigns/{campaign_id}/recipients?limit=1000")
    return {item["phone"]: item for item in page["items"]}


def test_start_releases_chunks_that_carry_the_recipients(tenant: Api, aws_env: dict[str, str]) -> None:
    campaign = started_campaign(tenant, 30, rate_per_second=20)
    messages = receive_all(aws_env["DISPATCH_QUEUE_URL"])
    bodies = [json.loads(m["Body"]) for m in messages]
    assert campaign["status"] == "running"
    assert campaign["counters"] == {"total": 30, "queued": 30, "in_flight": 0, "succeeded": 0, "failed": 0}
    # At 20/s the start releases its first window (1 s on the local stage): one chunk of 20.
    assert [len(b["recipients"]) for b in bodies] == [20]
    assert {"phone", "params", "previous_attempt", "fresh"} <= set(bodies[0]["recipients"][0])
    from chalicelib.workers.release import release_due_recipients

    assert release_due_recipients(now=time.time() + 1) == 10  # the next tick: the rest of the list
    later = [json.loads(m["Body"]) for m in receive_all(aws_env["DISPATCH_QUEUE_URL"])]
    assert [len(b["recipients"]) for b in later] == [10]


def test_duplicate_sqs_delivery_sends_once(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider
) -> None:
    campaign = started_campaign(tenant, 12)
    messages = receive_all(aws_env["DISPATCH_QUEUE_URL"])
    event = sqs_event(messages)
    assert chalice_app.dispatch(event, Context()) == {"batchItemFailures": []}
    assert chalice_app.dispatch(event, Context()) == {"batchItemFailures": []}  # SQS delivered it again
    sent = [m["to"] for m in provider.messages()]
    assert len(sent) == 12 and len(set(sent)) == 12
    assert provider.stats()["duplicates"] == 0
    assert {o["state"] for o in outcomes(tenant, campaign["id"]).values()} == {"succeeded"}


def test_a_chunk_released_twice_in_another_message_sends_nothing_twice(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider
) -> None:
    started_campaign(tenant, 5)
    message = receive_all(aws_env["DISPATCH_QUEUE_URL"])[0]
    chalice_app.dispatch(sqs_event([message]), Context())
    copy = dict(message, MessageId="another-message-id")  # what a re-run of the pacer would queue
    chalice_app.dispatch(sqs_event([copy]), Context())
    assert len(provider.messages()) == 5
    assert provider.stats()["duplicates"] == 0


def test_a_crash_mid_chunk_fails_only_that_record_and_its_redelivery_finishes_without_resending(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = started_campaign(tenant, 10)
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
    answer = chalice_app.dispatch(sqs_event(messages), Context())
    assert answer == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
    stuck = [o for o in outcomes(tenant, campaign["id"]).values() if o["state"] == "in_flight"]
    assert len(stuck) == 1

    monkeypatch.setattr(deliveries, "record_outcome", real)
    assert chalice_app.dispatch(sqs_event(messages), Context()) == {"batchItemFailures": []}
    final = outcomes(tenant, campaign["id"])
    assert {o["state"] for o in final.values()} == {"succeeded"}
    assert len(provider.messages()) == 10  # every recipient accepted once
    # The stuck recipient was sent again with the same idempotency key, which the provider recognised.
    assert provider.stats()["duplicates"] == 1
    assert final[stuck[0]["phone"]]["attempts"] == 1


def test_transient_failures_are_retried_per_policy_then_fail(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider
) -> None:
    provider.configure(transient_failure_rate=1.0)
    campaign = started_campaign(tenant, 3, retry_policy={"max_attempts": 2, "initial_delay_seconds": 1})
    chalice_app.dispatch(sqs_event(receive_all(aws_env["DISPATCH_QUEUE_URL"])), Context())
    first = outcomes(tenant, campaign["id"])
    assert {o["state"] for o in first.values()} == {"queued"}
    assert all(o["next_attempt_at"] and "503" in o["last_error"] for o in first.values())

    from chalicelib.workers.release import release_due_recipients

    assert release_due_recipients(now=time.time() + 5) == 3
    chalice_app.dispatch(sqs_event(receive_all(aws_env["DISPATCH_QUEUE_URL"])), Context())
    final = outcomes(tenant, campaign["id"])
    assert {(o["state"], o["attempts"]) for o in final.values()} == {("failed", 2)}
    assert provider.stats()["transient_failures"] == 6
    assert provider.messages() == []


def test_chunks_of_a_paused_campaign_are_kept_and_sent_after_resume(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider
) -> None:
    campaign = started_campaign(tenant, 8)
    messages = receive_all(aws_env["DISPATCH_QUEUE_URL"])
    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/pause")
    chalice_app.dispatch(sqs_event(messages), Context())
    assert provider.messages() == []
    assert {o["state"] for o in outcomes(tenant, campaign["id"]).values()} == {"queued"}

    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/resume")  # releases the parked recipients first
    chalice_app.dispatch(sqs_event(receive_all(aws_env["DISPATCH_QUEUE_URL"])), Context())
    assert len(provider.messages()) == 8
    assert {(o["state"], o["attempts"]) for o in outcomes(tenant, campaign["id"]).values()} == {("succeeded", 1)}


def test_a_recipient_missing_a_template_variable_fails_alone(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider
) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    rows = recipient_rows(3)
    rows[1]["params"] = {}
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows})
    campaign = tenant.ok("POST", "/v1/campaigns", campaign_body(listed["id"]), status=201)
    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/start")
    chalice_app.dispatch(sqs_event(receive_all(aws_env["DISPATCH_QUEUE_URL"])), Context())
    final = outcomes(tenant, campaign["id"])
    assert final[rows[1]["phone"]]["state"] == "failed"
    assert "first_name" in final[rows[1]["phone"]]["last_error"]
    assert sorted(m["text"] for m in provider.messages()) == ["Hi R0, 20% off today.", "Hi R2, 20% off today."]


def test_a_chunk_redelivered_while_paused_finishes_the_recipient_it_had_claimed(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = started_campaign(tenant, 6)
    messages = receive_all(aws_env["DISPATCH_QUEUE_URL"])
    from chalicelib.store import deliveries

    real = deliveries.record_outcome

    def crash(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("injected: worker died after the provider accepted")

    monkeypatch.setattr(deliveries, "record_outcome", crash)
    chalice_app.dispatch(sqs_event(messages), Context())  # every recipient claimed, sent, not recorded
    monkeypatch.setattr(deliveries, "record_outcome", real)
    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/pause")
    assert chalice_app.dispatch(sqs_event(messages), Context()) == {"batchItemFailures": []}
    states = {o["state"] for o in outcomes(tenant, campaign["id"]).values()}
    assert states == {"succeeded"}, "nothing may stay in flight behind a pause"
    assert len(provider.messages()) == 6
    assert provider.stats()["duplicates"] == 6  # finished with the same idempotency keys


def test_a_completion_lost_to_a_race_is_made_by_the_next_pacer_tick(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.workers import stats
    from chalicelib.workers.release import release_due_recipients
    from tests.integration.test_stats import change, pk_of

    campaign = started_campaign(tenant, 2)
    pk = pk_of(tenant, campaign)
    monkeypatch.setattr(stats, "complete_if_done", lambda campaign: False)  # a pause won the race
    records = [change(pk, p, None, "in_flight", 1 + i) for i, p in enumerate(("+12025550000", "+12025550001"))]
    records += [change(pk, p, "in_flight", "succeeded", 3 + i) for i, p in enumerate(("+12025550000", "+12025550001"))]
    chalice_app.stats({"Records": records}, None)
    assert tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")["status"] == "running"
    release_due_recipients()
    final = tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")
    assert final["status"] == "completed"
    assert final["counters"]["succeeded"] == 2
