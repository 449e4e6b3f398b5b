"""The fake Vonage Messages API provider, driven over real HTTP."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.local.fake_provider import FakeProvider

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
CREDENTIALS = ("key", "secret")  # the provider fixture's (tests/integration/conftest.py)


def a_send(**overrides: Any) -> dict[str, Any]:
    """A valid send payload; pass a field as None to leave it out."""
    payload: dict[str, Any] = {
        "to": "447700900001",
        "from": "Acme",
        "channel": "sms",
        "message_type": "text",
        "text": "Spring sale starts today",
        "client_ref": None,
    }
    payload.update(overrides)
    return {name: value for name, value in payload.items() if value is not None}


@pytest.fixture
def client(provider: FakeProvider) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=provider.base_url, auth=CREDENTIALS, timeout=5) as http:
        yield http


def test_valid_send_is_accepted_and_recorded(client: httpx.Client, provider: FakeProvider) -> None:
    response = client.post("/v1/messages", json=a_send(client_ref="campaign-1:recipient-1"))

    assert response.status_code == 202
    message_uuid = response.json()["message_uuid"]
    assert len(message_uuid) == 36
    recorded = client.get("/_fake/messages").json()
    assert recorded["messages"] == [
        {
            "message_uuid": message_uuid,
            "to": "447700900001",
            "from": "Acme",
            "channel": "sms",
            "text": "Spring sale starts today",
            "message_type": "text",
            "category": None,
            "options": None,
            "client_ref": "campaign-1:recipient-1",
            "accepted_at": pytest.approx(time.time(), abs=10),
            "duplicate": False,
            "fault": None,
        }
    ]
    assert recorded["requests"] == 1
    assert (recorded["accepted"], recorded["duplicates"], recorded["unique_recipients"]) == (1, 0, 1)
    assert provider.messages() == recorded["messages"]


def test_bearer_token_is_accepted_by_a_provider_that_knows_no_credentials() -> None:
    with FakeProvider() as provider:
        response = httpx.post(
            f"{provider.base_url}/v1/messages", json=a_send(), headers={"Authorization": "Bearer a.jwt.token"}
        )

    assert response.status_code == 202


@pytest.mark.parametrize("auth", [("key", "wrong"), ("other", "secret")], ids=["wrong-secret", "unknown-key"])
def test_a_provider_with_credentials_refuses_any_other(provider: FakeProvider, auth: tuple[str, str]) -> None:
    refused = httpx.post(f"{provider.base_url}/v1/messages", json=a_send(), auth=auth)
    bearer = httpx.post(f"{provider.base_url}/v1/messages", json=a_send(), headers={"Authorization": "Bearer x.y.z"})

    assert refused.status_code == bearer.status_code == 401
    assert provider.messages() == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic not-base64!"}, {"Authorization": "Token x"}],
    ids=["missing", "empty-bearer", "malformed-basic", "unknown-scheme"],
)
def test_send_without_credentials_is_unauthorized(provider: FakeProvider, headers: dict[str, str]) -> None:
    response = httpx.post(f"{provider.base_url}/v1/messages", json=a_send(), headers=headers)

    assert response.status_code == 401
    problem = response.json()
    assert problem["type"] == "https://developer.nexmo.com/api-errors#unauthorized"
    assert problem["title"] == "Unauthorized"
    assert problem["detail"]
    assert provider.messages() == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("to", "+447700900001"),
        ("to", "123456"),
        ("to", "4477009000012345"),
        ("to", "44770O900001"),
        ("from", ""),
        ("text", None),
        ("channel", "carrier-pigeon"),
        ("message_type", "image"),
        ("client_ref", 42),
    ],
)
def test_invalid_field_is_rejected_naming_the_field(
    client: httpx.Client, provider: FakeProvider, field: str, value: Any
) -> None:
    payload = a_send(**{field: value})
    if value is None:
        payload.pop(field, None)

    response = client.post("/v1/messages", json=payload)

    assert response.status_code == 422
    problem = response.json()
    assert problem["title"] == "Invalid params"
    assert problem["type"].startswith("https://developer.nexmo.com/api-errors#")
    assert [parameter["name"] for parameter in problem["invalid_parameters"]] == [field]
    assert all(parameter["reason"] for parameter in problem["invalid_parameters"])
    assert provider.messages() == []


def test_non_json_body_is_rejected(client: httpx.Client) -> None:
    response = client.post("/v1/messages", content=b"not json", headers={"Content-Type": "application/json"})

    assert response.status_code == 422
    assert response.json()["invalid_parameters"][0]["name"] == "body"


def test_a_resent_client_ref_is_sent_again_and_flagged_as_a_duplicate(client: httpx.Client) -> None:
    first = client.post("/v1/messages", json=a_send(client_ref="campaign-1:recipient-7"))
    resent = client.post("/v1/messages", json=a_send(client_ref="campaign-1:recipient-7"))
    other = client.post("/v1/messages", json=a_send(client_ref="campaign-1:recipient-8"))

    assert first.status_code == resent.status_code == other.status_code == 202
    uuids = [response.json()["message_uuid"] for response in (first, resent, other)]
    assert len(set(uuids)) == 3  # like Vonage: a resend is a new message, not the old one
    recorded = client.get("/_fake/messages").json()
    assert [(m["message_uuid"], m["client_ref"], m["duplicate"]) for m in recorded["messages"]] == [
        (uuids[0], "campaign-1:recipient-7", False),
        (uuids[1], "campaign-1:recipient-7", True),
        (uuids[2], "campaign-1:recipient-8", False),
    ]
    assert (recorded["accepted"], recorded["duplicates"], recorded["unique_recipients"]) == (3, 1, 1)


def test_without_client_ref_the_same_text_to_the_same_number_is_a_duplicate(client: httpx.Client) -> None:
    sends = [
        a_send(),
        a_send(),  # the same text to the same number again
        a_send(text="Another text"),
        a_send(to="447700900002"),
        a_send(client_ref="c1:r1"),  # a client_ref makes it another message, whatever its text
        a_send(),
    ]
    responses = [client.post("/v1/messages", json=send) for send in sends]

    assert [response.status_code for response in responses] == [202] * 6
    assert len({response.json()["message_uuid"] for response in responses}) == 6
    recorded = client.get("/_fake/messages").json()
    assert [message["duplicate"] for message in recorded["messages"]] == [False, True, False, False, False, True]
    assert (recorded["accepted"], recorded["duplicates"], recorded["unique_recipients"]) == (6, 2, 2)


def test_dedup_client_ref_answers_a_replay_with_the_original_uuid_and_records_nothing() -> None:
    with (
        FakeProvider(dedup_client_ref=True) as provider,
        httpx.Client(base_url=provider.base_url, auth=CREDENTIALS, timeout=5) as client,
    ):
        first = client.post("/v1/messages", json=a_send(client_ref="campaign-1:recipient-7"))
        replay = client.post("/v1/messages", json=a_send(client_ref="campaign-1:recipient-7"))
        other = client.post("/v1/messages", json=a_send(client_ref="campaign-1:recipient-8"))
        unreferenced = [client.post("/v1/messages", json=a_send(text="No reference")) for _ in range(2)]

        assert [r.status_code for r in (first, replay, other, *unreferenced)] == [202] * 5
        assert replay.json()["message_uuid"] == first.json()["message_uuid"]
        assert other.json()["message_uuid"] != first.json()["message_uuid"]
        recorded = client.get("/_fake/messages").json()
        # Only a client_ref is an idempotency key: sends without one are recorded, flagged as before.
        assert [(m["client_ref"], m["duplicate"]) for m in recorded["messages"]] == [
            ("campaign-1:recipient-7", False),
            ("campaign-1:recipient-8", False),
            (None, False),
            (None, True),
        ]
        assert (recorded["accepted"], recorded["duplicates"]) == (4, 2)


def test_dedup_client_ref_can_be_switched_at_runtime(client: httpx.Client) -> None:
    assert client.post("/_fake/config", json={"dedup_client_ref": True}).json()["dedup_client_ref"] is True
    first = client.post("/v1/messages", json=a_send(client_ref="r1"))
    replay = client.post("/v1/messages", json=a_send(client_ref="r1"))
    assert replay.json()["message_uuid"] == first.json()["message_uuid"]

    client.post("/_fake/config", json={"dedup_client_ref": False})
    resent = client.post("/v1/messages", json=a_send(client_ref="r1"))

    assert resent.json()["message_uuid"] != first.json()["message_uuid"]
    stats = client.get("/_fake/stats").json()
    assert (stats["accepted"], stats["duplicates"]) == (2, 2)


def test_rate_limit_throttles_a_burst_without_retry_after() -> None:
    with (
        FakeProvider(rate_limit_per_second=5) as provider,
        httpx.Client(base_url=provider.base_url, auth=CREDENTIALS, timeout=5) as client,
    ):
        started = time.monotonic()
        responses = [client.post("/v1/messages", json=a_send()) for _ in range(30)]
        elapsed = time.monotonic() - started

        statuses = Counter(response.status_code for response in responses)
        assert set(statuses) == {202, 429}
        assert 0 < statuses[202] < 30
        assert statuses[202] <= 5 + elapsed * 5 + 1  # burst plus refill while the requests ran
        throttled = [response for response in responses if response.status_code == 429]
        assert not any("Retry-After" in response.headers for response in throttled)  # as Vonage answers
        assert throttled[0].json()["type"] == "https://developer.nexmo.com/api-errors#throttled"
        assert throttled[0].json()["title"] == "Rate Limit Hit"
        stats = provider.stats()
        assert stats["throttled"] == statuses[429]
        assert stats["accepted"] == len(provider.messages()) == statuses[202]
        assert stats["requests"] == 30


def test_an_account_out_of_balance_is_answered_402_until_topped_up(client: httpx.Client) -> None:
    assert client.post("/_fake/config", json={"balance_messages": 2}).json()["balance_messages"] == 2
    statuses = [client.post("/v1/messages", json=a_send(to=f"4470000000{i}")).status_code for i in range(4)]
    assert statuses == [202, 202, 402, 402]
    assert client.get("/_fake/config").json()["balance_messages"] == 0
    assert client.post("/_fake/config", json={"balance_messages": -1}).status_code == 422
    assert client.post("/_fake/config", json={"balance_messages": None}).status_code == 200
    assert client.post("/v1/messages", json=a_send(to="447000000009")).status_code == 202


def test_rate_limit_is_checked_after_auth_but_before_validation() -> None:
    with (
        FakeProvider(rate_limit_per_second=0.001) as provider,
        httpx.Client(base_url=provider.base_url, auth=CREDENTIALS, timeout=5) as client,
    ):
        unauthorized = httpx.post(f"{provider.base_url}/v1/messages", json=a_send())
        invalid = client.post("/v1/messages", json=a_send(to="nope"))
        throttled = client.post("/v1/messages", json=a_send(to="nope"))

        assert unauthorized.status_code == 401  # did not use up the single token
        assert invalid.status_code == 422  # used it
        assert throttled.status_code == 429


def test_transient_failures_answer_503_and_record_nothing() -> None:
    with (
        FakeProvider(transient_failure_rate=1.0) as provider,
        httpx.Client(base_url=provider.base_url, auth=CREDENTIALS, timeout=5) as client,
    ):
        responses = [client.post("/v1/messages", json=a_send(client_ref=f"r{i}")) for i in range(5)]

        assert [response.status_code for response in responses] == [503] * 5
        assert responses[0].json()["title"] == "Service Unavailable"
        assert provider.messages() == []
        stats = provider.stats()
        assert stats["transient_failures"] == stats["failed_by_status"]["503"] == 5
        assert stats["accepted"] == 0


def test_transient_failures_are_reproducible_for_a_seed() -> None:
    def statuses(seed: int) -> list[int]:
        with (
            FakeProvider(transient_failure_rate=0.5, seed=seed) as provider,
            httpx.Client(base_url=provider.base_url, auth=CREDENTIALS, timeout=5) as client,
        ):
            return [client.post("/v1/messages", json=a_send()).status_code for _ in range(40)]

    first = statuses(seed=7)

    assert first == statuses(seed=7)
    assert set(first) == {202, 503}


def test_transient_failure_rate_adds_to_the_scripted_503_share() -> None:
    with (
        FakeProvider(transient_failure_rate=0.5, fail_statuses={"503": 0.5}) as provider,
        httpx.Client(base_url=provider.base_url, auth=CREDENTIALS, timeout=5) as client,
    ):
        statuses = [client.post("/v1/messages", json=a_send()).status_code for _ in range(20)]

        assert statuses == [503] * 20
        assert provider.stats()["transient_failures"] == 20


@pytest.mark.parametrize(
    ("status", "kind", "title"),
    [
        (400, "invalid-params", "Invalid params"),
        (401, "unauthorized", "Unauthorized"),
        (402, "low-balance", "Low balance"),
        (403, "forbidden", "Forbidden"),
        (429, "throttled", "Rate Limit Hit"),
        (500, "internal-error", "Internal Error"),
        (503, "service-unavailable", "Service Unavailable"),
    ],
)
def test_scripted_failure_answers_a_vonage_shaped_problem_and_records_nothing(
    client: httpx.Client, status: int, kind: str, title: str
) -> None:
    assert client.post("/_fake/config", json={"fail_statuses": {str(status): 1.0}}).status_code == 200

    response = client.post("/v1/messages", json=a_send(client_ref="c1:r1"))

    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == f"https://developer.nexmo.com/api-errors#{kind}"
    assert problem["title"] == title
    assert problem["detail"]
    assert len(problem["instance"]) == 32
    assert ("invalid_parameters" in problem) == (status == 400)
    assert "Retry-After" not in response.headers  # Vonage's 429 has none either
    stats = client.get("/_fake/stats").json()
    codes = ("400", "401", "402", "403", "429", "500", "503")
    assert stats["failed_by_status"] == {code: int(code == str(status)) for code in codes}
    assert stats["transient_failures"] == int(status == 503)
    assert stats["throttled"] == 0  # the rate limiter's own 429s only
    assert (stats["accepted"], stats["requests"]) == (0, 1)


def test_missing_uuid_accepts_and_records_but_answers_200_without_uuid(client: httpx.Client) -> None:
    client.post("/_fake/config", json={"missing_uuid_rate": 1.0})

    response = client.post("/v1/messages", json=a_send(client_ref="c1:r1"))

    assert response.status_code == 200
    assert response.json() == {}
    recorded = client.get("/_fake/messages").json()
    assert [(m["client_ref"], m["fault"]) for m in recorded["messages"]] == [("c1:r1", "missing_uuid")]
    assert (recorded["accepted"], recorded["missing_uuid"]) == (1, 1)


def test_timeout_after_accept_sends_the_message_but_holds_the_answer(client: httpx.Client) -> None:
    client.post("/_fake/config", json={"timeout_after_accept_rate": 1.0, "timeout_after_accept_ms": 1200})
    url = f"{client.base_url}/v1/messages"
    held_answer: list[int] = []
    holder = threading.Thread(
        target=lambda: held_answer.append(httpx.post(url, json=a_send(client_ref="c0"), auth=CREDENTIALS).status_code)
    )
    holder.start()
    while client.get("/_fake/stats").json()["timed_out_after_accept"] < 1:
        time.sleep(0.02)
    assert holder.is_alive() and not held_answer  # recorded as sent while its answer is still held
    holder.join(10)
    client.post("/_fake/reset")

    with pytest.raises(httpx.ReadTimeout):
        client.post("/v1/messages", json=a_send(client_ref="c1:r1"), timeout=0.3)
    # The client gave up, yet the message went out.
    stats = client.get("/_fake/stats").json()
    assert (stats["accepted"], stats["timed_out_after_accept"]) == (1, 1)

    started = time.monotonic()
    patient = client.post("/v1/messages", json=a_send(client_ref="c1:r2"), timeout=5)
    assert time.monotonic() - started >= 1.2
    assert patient.status_code == 202
    recorded = client.get("/_fake/messages").json()
    assert [(m["client_ref"], m["fault"]) for m in recorded["messages"]] == [
        ("c1:r1", "timeout_after_accept"),
        ("c1:r2", "timeout_after_accept"),
    ]
    assert recorded["messages"][1]["message_uuid"] == patient.json()["message_uuid"]


def test_a_slow_answer_blocks_neither_other_sends_nor_the_control_endpoints(
    client: httpx.Client, provider: FakeProvider
) -> None:
    client.post("/_fake/config", json={"latency_ms": 2000})
    url = f"{provider.base_url}/v1/messages"
    statuses: list[int] = []

    def send(i: int) -> None:
        statuses.append(httpx.post(url, json=a_send(client_ref=f"r{i}"), auth=CREDENTIALS, timeout=30).status_code)

    senders = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    started = time.monotonic()
    for sender in senders:
        sender.start()
    while client.get("/_fake/stats").json()["requests"] < 4:  # every send is being held
        time.sleep(0.02)
    assert client.get("/_fake/config").json()["latency_ms"] == 2000
    assert all(sender.is_alive() for sender in senders)  # answered while every send still sleeps
    for sender in senders:
        sender.join(timeout=30)

    assert statuses == [202] * 4
    assert time.monotonic() - started < 6.0  # concurrently: one after another would take 8 s


def test_a_hundred_concurrent_connections_are_all_served() -> None:
    # socketserver's default listen backlog (5) refused connections under a dispatch's 50 sends at once.
    with FakeProvider(latency_ms=500) as provider:
        url = f"{provider.base_url}/v1/messages"
        statuses: list[int] = []
        lock = threading.Lock()

        def send(i: int) -> None:
            status = httpx.post(url, json=a_send(client_ref=f"r{i}"), auth=CREDENTIALS, timeout=30).status_code
            with lock:
                statuses.append(status)

        senders = [threading.Thread(target=send, args=(i,)) for i in range(100)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(timeout=60)
        assert statuses == [202] * 100


def test_all_random_faults_are_reproducible_for_a_seed() -> None:
    faults: dict[str, Any] = {"fail_statuses": {"503": 0.2, "400": 0.1, "429": 0.1}, "missing_uuid_rate": 0.3}

    def outcomes(seed: int) -> tuple[list[tuple[int, bool]], dict[str, Any]]:
        with (
            FakeProvider(seed=seed, **faults) as provider,
            httpx.Client(base_url=provider.base_url, auth=CREDENTIALS, timeout=5) as client,
        ):
            responses = [client.post("/v1/messages", json=a_send(client_ref=f"r{i}")) for i in range(100)]
            return [(r.status_code, "message_uuid" in r.json()) for r in responses], provider.stats()

    first, stats = outcomes(seed=3)

    assert first == outcomes(seed=3)[0]
    assert first != outcomes(seed=4)[0]
    counts = Counter(first)
    assert set(counts) == {(202, True), (200, False), (503, False), (400, False), (429, False)}
    assert 10 < counts[(503, False)] < 30  # about 20 of 100
    assert counts[(503, False)] == stats["failed_by_status"]["503"] == stats["transient_failures"]
    assert counts[(400, False)] == stats["failed_by_status"]["400"]
    assert counts[(429, False)] == stats["failed_by_status"]["429"]
    assert counts[(200, False)] == stats["missing_uuid"]
    assert stats["accepted"] == counts[(202, True)] + counts[(200, False)]


def test_config_endpoint_changes_behaviour(client: httpx.Client) -> None:
    failing = client.post("/_fake/config", json={"transient_failure_rate": 1.0})
    assert failing.status_code == 200
    assert failing.json() == {
        "rate_limit_per_second": 0.0,
        "transient_failure_rate": 1.0,
        "latency_ms": 0,
        "status_webhook_url": None,
        "inbound_webhook_url": None,
        "dedup_client_ref": False,
        "missing_uuid_rate": 0.0,
        "timeout_after_accept_rate": 0.0,
        "timeout_after_accept_ms": 30000,
        "fail_statuses": {},
        "scripted_by_number": {},
        "balance_messages": None,
        "receipts_by_number": {},
    }
    assert client.post("/v1/messages", json=a_send()).status_code == 503

    client.post("/_fake/config", json={"transient_failure_rate": 0, "rate_limit_per_second": 1})
    assert client.post("/v1/messages", json=a_send()).status_code == 202
    assert client.post("/v1/messages", json=a_send()).status_code == 429

    client.post("/_fake/config", json={"rate_limit_per_second": 0, "latency_ms": 300})
    started = time.monotonic()
    assert client.post("/v1/messages", json=a_send()).status_code == 202
    assert time.monotonic() - started >= 0.3
    assert client.get("/_fake/config").json()["latency_ms"] == 300


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"dedup_client_ref": "yes"}, "dedup_client_ref"),
        ({"dedup_client_ref": 1}, "dedup_client_ref"),
        ({"missing_uuid_rate": 1.5}, "missing_uuid_rate"),
        ({"timeout_after_accept_rate": -0.1}, "timeout_after_accept_rate"),
        ({"timeout_after_accept_ms": -1}, "timeout_after_accept_ms"),
        ({"timeout_after_accept_ms": "30s"}, "timeout_after_accept_ms"),
        ({"fail_statuses": [503]}, "fail_statuses"),
        ({"fail_statuses": {"418": 0.1}}, "fail_statuses"),
        ({"fail_statuses": {"503": 2}}, "fail_statuses"),
        ({"fail_statuses": {"503": 0.6, "500": 0.5}}, "fail_statuses"),
        ({"transient_failure_rate": 0.5, "fail_statuses": {"400": 0.6}}, "fail_statuses"),
        ({"missing_uuid_rate": 0.6, "timeout_after_accept_rate": 0.6}, "timeout_after_accept_rate"),
    ],
)
def test_invalid_fault_config_is_rejected_naming_the_field(
    client: httpx.Client, change: dict[str, Any], field: str
) -> None:
    before = client.get("/_fake/config").json()

    response = client.post("/_fake/config", json=change)

    assert response.status_code == 422
    assert [parameter["name"] for parameter in response.json()["invalid_parameters"]] == [field]
    assert client.get("/_fake/config").json() == before


def test_rates_sharing_a_draw_are_checked_against_the_current_config(client: httpx.Client) -> None:
    assert client.post("/_fake/config", json={"transient_failure_rate": 0.7}).status_code == 200

    too_much = client.post("/_fake/config", json={"fail_statuses": {"500": 0.4}})
    fits = client.post("/_fake/config", json={"fail_statuses": {"500": 0.3}})

    assert too_much.status_code == 422
    assert fits.status_code == 200
    assert fits.json()["fail_statuses"] == {"500": 0.3}


@pytest.mark.parametrize(
    "kwargs",
    [{"fail_statuses": {"200": 0.1}}, {"missing_uuid_rate": 2.0}, {"dedup_client_ref": "no"}],
    ids=["fail-status", "missing-uuid-rate", "dedup"],
)
def test_invalid_constructor_arguments_raise(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="invalid fake provider config"):
        FakeProvider(**kwargs)


def test_invalid_config_is_rejected_and_leaves_config_unchanged(client: httpx.Client) -> None:
    response = client.post("/_fake/config", json={"transient_failure_rate": 2, "colour": "blue"})

    assert response.status_code == 422
    names = {parameter["name"] for parameter in response.json()["invalid_parameters"]}
    assert names == {"transient_failure_rate", "colour"}
    assert client.get("/_fake/config").json()["transient_failure_rate"] == 0.0


def test_reset_clears_records_and_counters(client: httpx.Client) -> None:
    client.post("/v1/messages", json=a_send(client_ref="r1"))
    client.post("/v1/messages", json=a_send(client_ref="r1"))
    assert client.get("/_fake/stats").json()["duplicates"] == 1

    assert client.post("/_fake/reset").status_code == 200

    assert client.get("/_fake/messages").json() == {
        "messages": [],
        "accepted": 0,
        "unique_recipients": 0,
        "requests": 0,
        "duplicates": 0,
        "throttled": 0,
        "transient_failures": 0,
        "missing_uuid": 0,
        "timed_out_after_accept": 0,
        "failed_by_status": {"400": 0, "401": 0, "402": 0, "403": 0, "429": 0, "500": 0, "503": 0},
        "in_flight": 0,
        "peak_in_flight": 0,
        "callbacks_retried": 0,
        "inbound": 0,
        "outside_window": 0,
    }
    assert client.post("/v1/messages", json=a_send(client_ref="r1")).status_code == 202
    assert client.get("/_fake/stats").json()["duplicates"] == 0


def test_health_and_unknown_routes(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"ok": True}
    assert client.get("/v1/nowhere").status_code == 404
    assert client.post("/v1/nowhere", json={}).status_code == 404


class _CallbackReceiver(ThreadingHTTPServer):
    """Collects JSON bodies POSTed to it, standing in for the API's status webhook."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(json.loads(body))
                receiver.arrived.set()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def test_status_webhook_receives_submitted_delivered_and_read_callbacks(client: httpx.Client) -> None:
    receiver = _CallbackReceiver()
    threading.Thread(target=receiver.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/webhooks/status"
        client.post("/_fake/config", json={"status_webhook_url": url})

        sent = client.post("/v1/messages", json=a_send(channel="whatsapp", client_ref="c1:r1", **TEMPLATE))

        deadline = time.monotonic() + 10
        while len(receiver.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [c["status"] for c in receiver.received] == ["submitted", "delivered", "read"]  # a WhatsApp message
        callback = receiver.received[1]
        assert callback == {
            "message_uuid": sent.json()["message_uuid"],
            "to": "447700900001",
            "from": "Acme",
            "timestamp": callback["timestamp"],
            "status": "delivered",
            "channel": "whatsapp",
            "client_ref": "c1:r1",
        }
        assert time.strptime(callback["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
    finally:
        receiver.shutdown()
        receiver.server_close()


TEMPLATE: dict[str, Any] = {
    "message_type": "template",
    "text": None,
    "template": {"name": "order_update", "parameters": ["Ana"]},
    "whatsapp": {"policy": "deterministic", "locale": "en_GB"},
}


def test_a_whatsapp_text_goes_only_inside_the_24_hours_after_the_persons_last_message(
    client: httpx.Client, provider: FakeProvider
) -> None:
    receiver = _CallbackReceiver()
    threading.Thread(target=receiver.serve_forever, args=(0.05,), daemon=True).start()
    try:
        provider.configure(inbound_webhook_url=f"http://127.0.0.1:{receiver.server_address[1]}/inbound")
        text = a_send(channel="whatsapp", **{"from": "14155550100"})

        refused = client.post("/v1/messages", json=text)  # 447700900001 never wrote to 14155550100
        assert refused.status_code == 422
        assert refused.json()["type"].endswith("/messages-olympus#1340")
        assert refused.json()["title"] == "Outside of the allowed window"
        # A message 25 hours ago opened a window that has closed; one to another number opens none here.
        provider.inbound("+447700900001", "+14155550100", "hi", channel="whatsapp", at=time.time() - 25 * 3600)
        provider.inbound("+447700900001", "+14155550199", "hi", channel="whatsapp")
        provider.inbound("+447700900001", "+14155550100", "hi")  # an SMS opens no WhatsApp window
        assert client.post("/v1/messages", json=text).status_code == 422
        assert client.post("/v1/messages", json={**text, **TEMPLATE}).status_code == 202  # a template: always
        # Over POST /_fake/inbound, 23 hours ago: inside the window.
        played = {"from": "447700900001", "to": "14155550100", "text": "hi", "channel": "whatsapp"}
        assert client.post("/_fake/inbound", json={**played, "at": "yesterday"}).status_code == 422
        assert client.post("/_fake/inbound", json={**played, "at": time.time() - 23 * 3600}).status_code == 202
        assert client.post("/v1/messages", json=text).status_code == 202

        stats = provider.stats()
        assert stats["outside_window"] == 2 and stats["accepted"] == 2
        assert [m["message_type"] for m in provider.messages()] == ["template", "text"]
    finally:
        receiver.shutdown()
        receiver.server_close()


def test_unreachable_status_webhook_does_not_break_sends(client: httpx.Client) -> None:
    client.post("/_fake/config", json={"status_webhook_url": "http://127.0.0.1:9/unreachable"})

    assert client.post("/v1/messages", json=a_send()).status_code == 202
    assert client.post("/v1/messages", json=a_send()).status_code == 202


def test_stopped_provider_refuses_connections() -> None:
    with FakeProvider() as provider:
        url = provider.base_url
        assert httpx.get(f"{url}/health").status_code == 200

    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=2)


FAULT_FLAGS = [
    "--latency-ms", "5",
    "--dedup-client-ref",
    "--missing-uuid-rate", "0.1",
    "--timeout-after-accept-rate", "0.2",
    "--timeout-after-accept-ms", "1500",
    "--fail-statuses", "503=0.05,400=0.01",
]  # fmt: skip
FAULT_CONFIG = {
    "latency_ms": 5,
    "status_webhook_url": None,
    "inbound_webhook_url": None,
    "dedup_client_ref": True,
    "missing_uuid_rate": 0.1,
    "timeout_after_accept_rate": 0.2,
    "timeout_after_accept_ms": 1500,
    "fail_statuses": {"503": 0.05, "400": 0.01},
}


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "the fake provider printed nothing"
    return process.stdout.readline().strip()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_serves_until_signalled_and_exits_cleanly(stop_signal: signal.Signals) -> None:
    command = [sys.executable, "-m", "infra.local.fake_provider", "--port", "0", "--rate-limit", "200"]
    command += ["--transient-failure-rate", "0.05", "--seed", "1", *FAULT_FLAGS]
    with subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            line = _read_line(process, timeout=15)
            assert line.startswith("fake provider listening on http://127.0.0.1:")
            url = line.rsplit(" ", 1)[1]
            assert httpx.get(f"{url}/health", timeout=5).json() == {"ok": True}
            config = httpx.get(f"{url}/_fake/config", timeout=5).json()
            expected = {"rate_limit_per_second": 200.0, "transient_failure_rate": 0.05, **FAULT_CONFIG}
            # scripts and the balance are set over HTTP only
            assert config == {**expected, "scripted_by_number": {}, "balance_messages": None, "receipts_by_number": {}}

            process.send_signal(stop_signal)

            assert process.wait(timeout=10) == 0
            assert process.stderr is not None
            assert process.stderr.read() == ""
        finally:
            if process.poll() is None:
                process.kill()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--fail-statuses", "200=0.1"], "argument --fail-statuses: status '200' is not one of"),
        (["--fail-statuses", "503"], "argument --fail-statuses: expected STATUS=RATE"),
        (["--missing-uuid-rate", "1.5"], "fake provider: invalid fake provider config"),
    ],
    ids=["unknown-status", "malformed-mix", "rate-above-1"],
)
def test_cli_refuses_invalid_fault_flags(flags: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra.local.fake_provider", "--port", "0", *flags],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_local_stack_passes_its_provider_settings_to_the_provider_cli(tmp_path: Path) -> None:
    from infra.local import fake_provider
    from infra.local.stack import LocalStack
    from infra.local.stack import _parse_args as stack_args

    stack = LocalStack(
        provider_rate_limit=200,
        provider_transient_failure_rate=0.05,
        provider_latency_ms=5,
        provider_dedup_client_ref=True,
        provider_missing_uuid_rate=0.1,
        provider_timeout_after_accept_rate=0.2,
        provider_timeout_after_accept_ms=1500,
        provider_fail_statuses={"503": 0.05, "400": 0.01},
        log_dir=tmp_path,
    )
    command = stack._provider_args(8099)
    assert command[1:3] == ["-m", "infra.local.fake_provider"]
    args = fake_provider._parse_args(command[3:])
    assert fake_provider.fault_options(args) == {
        name: value for name, value in FAULT_CONFIG.items() if not name.endswith("_webhook_url")
    }
    assert (args.port, args.rate_limit, args.transient_failure_rate) == (8099, 200, 0.05)

    defaults = fake_provider._parse_args(LocalStack(log_dir=tmp_path)._provider_args(8099)[3:])
    assert fake_provider.fault_options(defaults) == {
        "latency_ms": 0,
        "dedup_client_ref": False,
        "missing_uuid_rate": 0.0,
        "timeout_after_accept_rate": 0.0,
        "timeout_after_accept_ms": 30000,
        "fail_statuses": {},
    }
    assert stack_args(FAULT_FLAGS).fail_statuses == {"503": 0.05, "400": 0.01}  # `make dev` takes the same flags
