"""Webhooks to the customer and the event log (decision 41): an endpoint that fails 5 times and then
recovers gets every event once it answers, each request verified with the `standardwebhooks` reference
verifier; the delivery log shows the retries; a replay sends the same event (same `webhook-id`) again;
an endpoint failing past the limit is disabled and the account's other endpoints are told; the event log
lists the campaign's events."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from infra.local.fake_endpoint import FakeEndpoint
from tests.faults.harness import Harness

PATH = "/hooks/bulk"


def endpoint(failures: int, then: int = 204) -> FakeEndpoint:
    """A customer's endpoint (the fake that records every request): 500 to its first `failures` requests,
    then `then`."""
    made = FakeEndpoint()
    made.script(status=then, by_path={PATH: [500] * failures})
    made.__enter__()
    return made


def url(endpoint: FakeEndpoint) -> str:
    return f"{endpoint.base_url}{PATH}"


def headers(request: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in request["headers"].items()}


@pytest.fixture
def endpoints(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FakeEndpoint]]:
    for name, value in {
        "OUTBOUND_ALLOW_HTTP": "true",
        "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
        "WEBHOOK_FIRST_RETRY_SECONDS": "0",  # the growing delays are unit-tested; here the retries come at once
    }.items():
        monkeypatch.setenv(name, value)
    from chalicelib.settings import get_settings

    get_settings.cache_clear()
    made: list[FakeEndpoint] = []
    yield made
    for each in made:
        each.__exit__()


def test_an_endpoint_failing_5_times_then_recovering_gets_every_event_once_signed(
    harness: Harness, endpoints: list[FakeEndpoint]
) -> None:
    hook = endpoint(failures=5)
    endpoints.append(hook)
    harness.with_events = True
    created = harness.tenant.ok(
        "POST", "/v1/webhooks", {"url": url(hook), "event_types": ["delivery.succeeded"]}, status=201
    )
    secret = created["secret"]
    assert secret.startswith("whsec_") and created["webhook"]["enabled"] is True
    assert "secret" not in harness.tenant.ok("GET", f"/v1/webhooks/{created['webhook']['id']}")

    campaign = harness.campaign(12, retry_policy=None)
    final = harness.run(campaign["id"])
    harness.settle(final, 12)
    harness.webhooks()

    verifier = Webhook(secret)
    for request in hook.requests:  # failed tries and the successful one alike are signed
        verifier.verify(request["body"], headers(request))
    assert len(hook.requests) == 12 + 5  # the 5 refused tries were each tried again once, nothing more
    answered = hook.requests[5:]  # the fake answered its first 5 requests 500, the rest 204
    delivered = [json.loads(request["body"]) for request in answered]
    ids = Counter(headers(request)["webhook-id"] for request in answered)
    assert len(ids) == 12 and set(ids.values()) == {1}, ids
    assert {d["type"] for d in delivered} == {"delivery.succeeded"}
    assert sorted(d["data"]["recipient_id"] for d in delivered) == sorted(
        o["recipient_id"] for o in harness.outcomes(campaign["id"])
    )
    webhook_id = created["webhook"]["id"]
    log = harness.tenant.ok("GET", f"/v1/webhooks/{webhook_id}/deliveries?limit=100")["items"]
    assert Counter(item["state"] for item in log) == {"delivered": 12}
    assert sum(item["attempts"] for item in log) == 12 + 5
    assert harness.tenant.ok("GET", f"/v1/webhooks/{webhook_id}")["failing_since"] is None

    # A replay sends the same event again, under the same id (the receiver deduplicates on it).
    replayed = harness.tenant.ok("POST", f"/v1/webhooks/{webhook_id}/deliveries/{log[0]['id']}/replay", status=202)
    harness.webhooks()
    assert headers(hook.requests[-1])["webhook-id"] == replayed["event_id"]
    verifier.verify(hook.requests[-1]["body"], headers(hook.requests[-1]))

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
    harness: Harness, endpoints: list[FakeEndpoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_RETRY_SECONDS", "0")  # given up at the first failure: dead-lettered
    monkeypatch.setenv("WEBHOOK_DISABLE_AFTER_SECONDS", "0")  # and disabled at once
    from chalicelib.settings import get_settings

    get_settings.cache_clear()
    broken, healthy = endpoint(failures=0, then=500), endpoint(failures=0)
    endpoints += [broken, healthy]
    harness.with_events = True
    bad = harness.tenant.ok("POST", "/v1/webhooks", {"url": url(broken)}, status=201)["webhook"]
    harness.tenant.ok("POST", "/v1/webhooks", {"url": url(healthy), "event_types": ["webhook.disabled"]}, status=201)

    campaign = harness.campaign(3, retry_policy=None)
    harness.settle(harness.run(campaign["id"]), 3)
    harness.webhooks()

    now = harness.tenant.ok("GET", f"/v1/webhooks/{bad['id']}")
    assert now["enabled"] is False and "failed" in now["disabled_reason"]
    told = [json.loads(request["body"]) for request in healthy.requests]
    assert [(t["type"], t["data"]["data"]["webhook_id"]) for t in told] == [("webhook.disabled", bad["id"])]
    log = harness.tenant.ok("GET", f"/v1/webhooks/{bad['id']}/deliveries?limit=100")["items"]
    assert {item["state"] for item in log} == {"dead_lettered"} and len(broken.requests) == len(log) == 1
    # Enabled again, it takes the next events.
    assert harness.tenant.ok("POST", f"/v1/webhooks/{bad['id']}/enable")["enabled"] is True


def test_a_webhook_aimed_at_a_private_address_is_refused(harness: Harness) -> None:
    refused = harness.tenant.call("POST", "/v1/webhooks", {"url": "https://169.254.169.254/latest/meta-data"})
    assert refused.status_code == 422
    assert [e["field"] for e in json.loads(refused.body)["errors"]] == ["url"]
