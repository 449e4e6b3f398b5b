"""The local stack pointed at services run elsewhere: a provider at another base URL (`make dev
PROVIDER_URL=...`), and an HTTP action calling an endpoint outside the stack, with its secret in (moto's)
Secrets Manager, all through `chalice local`, the event runner and moto's server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from infra.local.client import CampaignApi, generated_recipients
from infra.local.fake_endpoint import FakeEndpoint
from infra.local.fake_provider import FakeProvider
from infra.local.stack import LocalStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[tuple[FakeProvider, FakeEndpoint]]:
    with FakeProvider() as provider, FakeEndpoint() as endpoint:
        yield provider, endpoint


@pytest.fixture(scope="module")
def api(elsewhere: tuple[FakeProvider, FakeEndpoint]) -> Iterator[CampaignApi]:
    provider, _ = elsewhere
    with LocalStack(provider_base_url=provider.base_url) as stack:
        assert stack.provider_url == provider.base_url
        client = CampaignApi.for_new_account(stack.api_url, stack.admin_token, name="elsewhere")
        yield client
        client.close()


def run(api: CampaignApi, body: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    listed = api.create_list(body["name"])
    api.add_recipients(listed["id"], rows)
    campaign = api.call("POST", "/v1/campaigns", {**body, "list_id": listed["id"], "rate_per_second": 100})
    api.call("POST", f"/v1/campaigns/{campaign['id']}/start")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        current: dict[str, Any] = api.call("GET", f"/v1/campaigns/{campaign['id']}")
        if current["status"] == "completed":
            return current
        time.sleep(0.5)
    raise AssertionError(f"not completed: {current}")


def test_sms_goes_to_the_provider_at_the_given_base_url(
    api: CampaignApi, elsewhere: tuple[FakeProvider, FakeEndpoint]
) -> None:
    provider, _ = elsewhere
    body = {"name": "sms", "sender": "Acme", "template": "Hi {{ first_name }}"}
    campaign = run(api, body, generated_recipients(30))
    assert campaign["counters"]["succeeded"] == 30
    assert provider.stats()["accepted"] == 30 and provider.stats()["duplicates"] == 0


def test_an_http_campaign_calls_the_endpoint_once_per_recipient_with_its_secret(
    api: CampaignApi, elsewhere: tuple[FakeProvider, FakeEndpoint]
) -> None:
    _, endpoint = elsewhere
    action = api.call(
        "POST",
        "/v1/actions",
        {
            "name": "crm",
            "url": endpoint.base_url + "/notes/{{ id | url_encode }}",
            "body": '{"text": {{ message | json }}}',
            "auth": {"type": "basic", "username": "bulk", "secret": "s3cret"},
        },
    )
    rows = generated_recipients(20)
    body = {
        "name": "http",
        "channel": "http",
        "action_id": action["id"],
        "sender": "x",
        "template": "Hi {{ first_name }}",
    }
    campaign = run(api, body, rows)
    assert campaign["counters"]["succeeded"] == 20
    assert len(endpoint.requests) == 20 and endpoint.duplicates == 0
    first = endpoint.requests[0]
    assert first["headers"]["Authorization"] == "Basic YnVsazpzM2NyZXQ="  # bulk:s3cret
    assert json.loads(first["body"])["text"].startswith("Hi ")
