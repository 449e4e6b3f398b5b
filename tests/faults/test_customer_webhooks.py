"""Webhooks to the customer and the event log (decision 41): an endpoint that fails 5 times and then
recovers gets every event once it answers, each request verified with the `standardwebhooks` reference
verifier; the delivery log shows the retries; a replay sends the same event (same `webhook-id`) again;
an endpoint failing past the limit is disabled and the account's other endpoints are told; the event log
lists the campaign's events."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from tests.faults.harness import Harness


class Endpoint:
    """A customer's endpoint: answers 500 to its first `failures` requests, then 204; keeps every request."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    status = 500 if len(endpoint.requests) < endpoint.failures else 204
                    endpoint.requests.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/bulk"

    def delivered(self) -> list[tuple[dict[str, str], bytes]]:
        return [(headers, body) for headers, body, status in self.requests if status < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoints(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Endpoint]]:
    for name, value in {
        "OUTBOUND_ALLOW_HTTP": "true",
        "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
        "WEBHOOK_FIRST_RETRY_SECONDS": "0",  # the growing delays are unit-tested; here the retries come at once
    }.items():
        monkeypatch.setenv(name, value)
    from chalicelib.settings import get_settings

    get_settings.cache_clear()
    made: list[Endpoint] = []
    yield made
    for endpoint in made:
        endpoint.close()


def test_an_endpoint_failing_5_times_then_recovering_gets_every_event_once_signed(
    harness: Harness, endpoints: list[Endpoint]
) -> None:
    endpoint = Endpoint(failures=5)
    endpoints.append(endpoint)
    harness.with_events = True
    created = harness.tenant.ok(
        "POST", "/v1/webhooks", {"url": endpoint.url, "event_types": ["delivery.succeeded"]}, status=201
    )
    secret = created["secret"]
    assert secret.startswith("whsec_") and created["webhook"]["enabled"] is True
    assert "secret" not in harness.tenant.ok("GET", f"/v1/webhooks/{created['webhook']['id']}")

    campaign = harness.campaign(12, retry_policy=None)
    final = harness.run(campaign["id"])
    harness.settle(final, 12)
    harness.webhooks()

    verifier = Webhook(secret)
    for headers, body, _ in endpoint.requests:  # failed tries and the successful one alike are signed
        verifier.verify(body, headers)
    delivered = [json.loads(body) for _, body in endpoint.delivered()]
    ids = Counter(headers["webhook-id"] for headers, _ in endpoint.delivered())
    assert len(ids) == 12 and set(ids.values()) == {1}, ids
    assert {d["type"] for d in delivered} == {"delivery.succeeded"}
    assert sorted(d["data"]["recipient_id"] for d in delivered) == sorted(
        o["recipient_id"] for o in harness.outcomes(campaign["id"])
    )
    assert sum(1 for *_, status in endpoint.requests if status >= 300) == 5
    webhook_id = created["webhook"]["id"]
    log = harness.tenant.ok("GET", f"/v1/webhooks/{webhook_id}/deliveries?limit=100")["items"]
    assert Counter(item["state"] for item in log) == {"delivered": 12}
    assert sum(item["attempts"] for item in log) == 12 + 5
    assert harness.tenant.ok("GET", f"/v1/webhooks/{webhook_id}")["failing_since"] is None

    # A replay sends the same event again, under the same id (the receiver deduplicates on it).
    replayed = harness.tenant.ok("POST", f"/v1/webhooks/{webhook_id}/deliveries/{log[0]['id']}/replay", status=202)
    harness.webhooks()
    assert endpoint.requests[-1][0]["webhook-id"] == replayed["event_id"]
    verifier.verify(endpoint.requests[-1][1], endpoint.requests[-1][0])

    # The event log has the same events, by campaign and by type.
    logged = harness.tenant.ok("GET", f"/v1/events?campaign_id={campaign['id']}&type=delivery.succeeded&limit=5")
    assert len(logged["items"]) == 5 and logged["next_page_token"]
    rest = harness.tenant.ok(
        "GET",
        f"/v1/events?campaign_id={campaign['id']}&type=delivery.succeeded&limit=100&page_token={logged['next_page_token']}",
    )
    assert sorted(e["id"] for e in logged["items"] + rest["items"]) == sorted(ids)

    # The campaign's timeline counts them by minute; the stream batches played again add nothing.
    stats = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/stats?granularity=minute")
    assert sum(point["sent"] for point in stats["series"]) == 12
    harness._iterators.clear()  # the stream read again from its start: every batch replayed
    harness.stream()
    again = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/stats?granularity=day")
    assert [point["sent"] for point in again["series"]] == [12] and again["series"][0]["skipped"] == 0


def test_an_endpoint_failing_past_the_limit_is_disabled_and_the_others_are_told(
    harness: Harness, endpoints: list[Endpoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_RETRY_SECONDS", "0")  # given up at the first failure: dead-lettered
    monkeypatch.setenv("WEBHOOK_DISABLE_AFTER_SECONDS", "0")  # and disabled at once
    from chalicelib.settings import get_settings

    get_settings.cache_clear()
    broken, healthy = Endpoint(failures=10**6), Endpoint(failures=0)
    endpoints += [broken, healthy]
    harness.with_events = True
    bad = harness.tenant.ok("POST", "/v1/webhooks", {"url": broken.url}, status=201)["webhook"]
    harness.tenant.ok("POST", "/v1/webhooks", {"url": healthy.url, "event_types": ["webhook.disabled"]}, status=201)

    campaign = harness.campaign(3, retry_policy=None)
    harness.settle(harness.run(campaign["id"]), 3)
    harness.webhooks()

    now = harness.tenant.ok("GET", f"/v1/webhooks/{bad['id']}")
    assert now["enabled"] is False and "failed" in now["disabled_reason"]
    told = [json.loads(body) for _, body in healthy.delivered()]
    assert [(t["type"], t["data"]["data"]["webhook_id"]) for t in told] == [("webhook.disabled", bad["id"])]
    log = harness.tenant.ok("GET", f"/v1/webhooks/{bad['id']}/deliveries?limit=100")["items"]
    assert {item["state"] for item in log} == {"dead_lettered"} and len(broken.requests) == len(log) == 1
    # Enabled again, it takes the next events.
    assert harness.tenant.ok("POST", f"/v1/webhooks/{bad['id']}/enable")["enabled"] is True


def test_a_webhook_aimed_at_a_private_address_is_refused(harness: Harness) -> None:
    refused = harness.tenant.call("POST", "/v1/webhooks", {"url": "https://169.254.169.254/latest/meta-data"})
    assert refused.status_code == 422
    assert [e["field"] for e in json.loads(refused.body)["errors"]] == ["url"]
