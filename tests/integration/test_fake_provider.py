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
CREDENTIALS = ("api-key", "api-secret")


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
            "client_ref": "campaign-1:recipient-1",
            "accepted_at": pytest.approx(time.time(), abs=10),
        }
    ]
    assert recorded["requests"] == 1
    assert provider.messages() == recorded["messages"]


def test_bearer_token_is_accepted(provider: FakeProvider) -> None:
    response = httpx.post(
        f"{provider.base_url}/v1/messages", json=a_send(), headers={"Authorization": "Bearer a.jwt.token"}
    )

    assert response.status_code == 202


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


def test_replayed_client_ref_returns_the_same_uuid_and_sends_once(client: httpx.Client) -> None:
    first = client.post("/v1/messages", json=a_send(client_ref="campaign-1:recipient-7"))
    replay = client.post("/v1/messages", json=a_send(client_ref="campaign-1:recipient-7"))
    other = client.post("/v1/messages", json=a_send(client_ref="campaign-1:recipient-8"))

    assert first.status_code == replay.status_code == other.status_code == 202
    assert replay.json()["message_uuid"] == first.json()["message_uuid"]
    assert other.json()["message_uuid"] != first.json()["message_uuid"]
    recorded = client.get("/_fake/messages").json()
    assert [message["client_ref"] for message in recorded["messages"]] == [
        "campaign-1:recipient-7",
        "campaign-1:recipient-8",
    ]
    assert recorded["duplicates"] == 1


def test_sends_without_client_ref_are_never_deduplicated(client: httpx.Client) -> None:
    uuids = {client.post("/v1/messages", json=a_send()).json()["message_uuid"] for _ in range(3)}

    assert len(uuids) == 3
    assert client.get("/_fake/stats").json()["duplicates"] == 0


def test_rate_limit_throttles_a_burst_with_retry_after() -> None:
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
        assert all(response.headers["Retry-After"] == "1" for response in throttled)
        assert throttled[0].json()["type"] == "https://developer.nexmo.com/api-errors#throttled"
        assert throttled[0].json()["title"] == "Rate Limit Hit"
        stats = provider.stats()
        assert stats["throttled"] == statuses[429]
        assert stats["accepted"] == len(provider.messages()) == statuses[202]
        assert stats["requests"] == 30


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
        assert provider.stats()["transient_failures"] == 5


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


def test_config_endpoint_changes_behaviour(client: httpx.Client) -> None:
    failing = client.post("/_fake/config", json={"transient_failure_rate": 1.0})
    assert failing.status_code == 200
    assert failing.json() == {
        "rate_limit_per_second": 0.0,
        "transient_failure_rate": 1.0,
        "latency_ms": 0,
        "status_webhook_url": None,
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


def test_invalid_config_is_rejected_and_leaves_config_unchanged(client: httpx.Client) -> None:
    response = client.post("/_fake/config", json={"transient_failure_rate": 2, "colour": "blue"})

    assert response.status_code == 422
    names = {parameter["name"] for parameter in response.json()["invalid_parameters"]}
    assert names == {"transient_failure_rate", "colour"}
    assert client.get("/_fake/config").json()["transient_failure_rate"] == 0.0


def test_reset_clears_records_and_counters(client: httpx.Client) -> None:
    client.post("/v1/messages", json=a_send(client_ref="r1"))
    client.post("/v1/messages", json=a_send(client_ref="r1"))

    assert client.post("/_fake/reset").status_code == 200

    assert client.get("/_fake/messages").json() == {
        "messages": [],
        "accepted": 0,
        "duplicates": 0,
        "throttled": 0,
        "transient_failures": 0,
        "requests": 0,
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


def test_status_webhook_receives_a_delivered_callback(client: httpx.Client) -> None:
    receiver = _CallbackReceiver()
    threading.Thread(target=receiver.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/webhooks/status"
        client.post("/_fake/config", json={"status_webhook_url": url})

        sent = client.post("/v1/messages", json=a_send(channel="whatsapp", client_ref="c1:r1"))

        assert receiver.arrived.wait(timeout=10)
        callback = receiver.received[0]
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


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "the fake provider printed nothing"
    return process.stdout.readline().strip()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_serves_until_signalled_and_exits_cleanly(stop_signal: signal.Signals) -> None:
    command = [sys.executable, "-m", "infra.local.fake_provider", "--port", "0", "--rate-limit", "200"]
    command += ["--transient-failure-rate", "0.05", "--seed", "1"]
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
            assert httpx.get(f"{url}/_fake/config", timeout=5).json()["rate_limit_per_second"] == 200.0

            process.send_signal(stop_signal)

            assert process.wait(timeout=10) == 0
            assert process.stderr is not None
            assert process.stderr.read() == ""
        finally:
            if process.poll() is None:
                process.kill()
