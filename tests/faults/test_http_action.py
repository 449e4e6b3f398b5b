"""HTTP actions: the account's endpoint called once per recipient through the outbound guard, judged by the
action's own success rule, retried on its retry statuses, never resent after a timeout; secrets kept in
Secrets Manager and never shown. The endpoint is a real HTTP server that records every request."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from infra.local.fake_endpoint import FakeEndpoint
from tests.faults.harness import Harness
from tests.utils import Api, campaign_body


@pytest.fixture
def endpoint() -> Iterator[FakeEndpoint]:
    with FakeEndpoint() as fake:
        yield fake


def rows(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"c{i}",
            "destinations": [{"type": "phone", "address": f"+1415555{i:04d}"}],
            "attributes": {"first_name": f"Ann{i}"},
        }
        for i in range(count)
    ]


def action_body(endpoint: FakeEndpoint, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "CRM note",
        "method": "POST",
        "url": endpoint.base_url + "/crm/{{ id }}",
        "headers": {"X-Tenant": "acme"},
        "body": '{"to": "{{ phone }}", "text": {{ message | json }}}',
        "auth": {"type": "bearer", "secret": "tok-123"},
        "timeout_seconds": 1,
        **overrides,
    }


def http_campaign(tenant: Api, action_id: str, count: int, **overrides: Any) -> dict[str, Any]:
    listed = tenant.ok("POST", "/v1/lists", {"name": "crm"}, status=201)
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows(count)})
    body = campaign_body(listed["id"], channel="http", action_id=action_id, rate_per_second=200, **overrides)
    created = tenant.ok("POST", "/v1/campaigns", body, status=201)
    return dict(tenant.ok("POST", f"/v1/campaigns/{created['id']}/start"))


def test_each_recipient_is_one_request_with_its_own_url_body_and_the_secret(
    harness: Harness, endpoint: FakeEndpoint
) -> None:
    action = harness.tenant.ok("POST", "/v1/actions", action_body(endpoint), status=201)
    assert action["auth"] == {"type": "bearer", "username": None, "signature_header": None, "secret_set": True}
    assert "tok-123" not in json.dumps(harness.tenant.ok("GET", f"/v1/actions/{action['id']}"))
    stored = boto3.client("secretsmanager", region_name="us-east-1").list_secrets()["SecretList"]
    assert [s["Name"].endswith(f"/actions/{action['id']}") for s in stored] == [True]

    campaign = harness.run(http_campaign(harness.tenant, action["id"], 5)["id"])

    assert campaign["status"] == "completed" and campaign["counters"]["succeeded"] == 5
    assert harness.provider.messages() == [], "nothing went to the SMS provider"
    assert sorted(endpoint.paths()) == [f"/crm/c{i}" for i in range(5)] and endpoint.duplicates == 0
    request = next(r for r in endpoint.requests if r["path"] == "/crm/c2")
    assert json.loads(request["body"]) == {"to": "+14155550002", "text": "Hi Ann2, 20% off today."}
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["authorization"] == "Bearer tok-123" and headers["x-tenant"] == "acme"
    assert headers["idempotency-key"].endswith(":c2:1") and headers["content-type"] == "application/json"


def test_the_action_rule_decides_retry_fail_and_unknown(harness: Harness, endpoint: FakeEndpoint) -> None:
    body = action_body(
        endpoint, success_json_field="result.status", success_json_value="ok", retry_statuses=[503], auth={}
    )
    action = harness.tenant.ok("POST", "/v1/actions", body, status=201)
    endpoint.script(
        body={"result": {"status": "ok"}},
        by_path={"/crm/c0": [503], "/crm/c1": [400], "/crm/c2": [500]},
    )
    created = http_campaign(harness.tenant, action["id"], 4)

    campaign = harness.run(created["id"])

    outcomes = {o["recipient_id"]: o for o in harness.outcomes(created["id"])}
    assert {rid: o["state"] for rid, o in outcomes.items()} == {
        "c0": "succeeded",  # 503 is retried, then ok
        "c1": "failed",  # 400: permanent
        "c2": "failed",  # 500 is not in this action's retry statuses
        "c3": "succeeded",
    }
    assert "answered 400" in outcomes["c1"]["history"][-1]["error"]
    assert Counter(endpoint.paths()) == {"/crm/c0": 2, "/crm/c1": 1, "/crm/c2": 1, "/crm/c3": 1}
    assert campaign["counters"]["succeeded"] == 2 and campaign["counters"]["failed"] == 2

    endpoint.script(body={"result": {"status": "queued"}})  # answered 200, but not what the rule asks
    second = harness.run(http_campaign(harness.tenant, action["id"], 1)["id"])
    assert second["counters"]["failed"] == 1


def test_an_endpoint_that_does_not_answer_in_time_is_unknown_and_not_called_again(
    harness: Harness, endpoint: FakeEndpoint
) -> None:
    action = harness.tenant.ok("POST", "/v1/actions", action_body(endpoint), status=201)
    endpoint.script(timeout_after_receive_ms=1500)  # past the action's 1 s timeout

    campaign = harness.run(http_campaign(harness.tenant, action["id"], 3)["id"])

    assert campaign["counters"]["unknown"] == 3
    assert Counter(endpoint.paths()) == {"/crm/c0": 1, "/crm/c1": 1, "/crm/c2": 1}, "never resent"


def test_an_endpoint_refusing_the_credentials_pauses_the_campaign(harness: Harness, endpoint: FakeEndpoint) -> None:
    action = harness.tenant.ok("POST", "/v1/actions", action_body(endpoint), status=201)
    endpoint.script(status=401)
    created = http_campaign(harness.tenant, action["id"], 4)

    harness.run(created["id"], rounds=4)

    campaign = harness.tenant.ok("GET", f"/v1/campaigns/{created['id']}")
    assert campaign["status"] == "paused" and "credentials" in campaign["pause_reason"]
    assert campaign["counters"]["failed"] == 0


def test_the_test_endpoint_shows_the_request_without_its_secret_and_the_answer(
    harness: Harness, endpoint: FakeEndpoint
) -> None:
    hmac_auth = {"type": "hmac", "secret": "key-1", "signature_header": "X-Sig"}
    action = harness.tenant.ok("POST", "/v1/actions", action_body(endpoint, auth=hmac_auth), status=201)
    endpoint.script(body={"id": "note-9"})

    result = harness.tenant.ok(
        "POST", f"/v1/actions/{action['id']}/test", {"data": {"id": "c7", "phone": "+1415", "message": "hello"}}
    )

    assert result["status"] == 200 and result["outcome"] == "succeeded", result
    assert result["request"]["url"] == endpoint.base_url + "/crm/c7"
    assert json.loads(result["request"]["body"]) == {"to": "+1415", "text": "hello"}
    assert result["request"]["headers"]["X-Sig"].startswith("t=") and "key-1" not in json.dumps(result)
    assert json.loads(result["response_body"]) == {"id": "note-9"}
    assert endpoint.paths() == ["/crm/c7"]


def test_the_guard_refuses_private_addresses_and_actions_are_checked(harness: Harness, endpoint: FakeEndpoint) -> None:
    tenant = harness.tenant
    metadata = tenant.ok(
        "POST", "/v1/actions", action_body(endpoint, url="http://169.254.169.254/latest/meta-data"), status=201
    )
    result = tenant.ok("POST", f"/v1/actions/{metadata['id']}/test", {"data": {"id": "x", "phone": "+1"}})
    assert result["outcome"] == "failed" and "169.254.169.254" in result["error"] and result["status"] is None

    def refused(field: str, **overrides: Any) -> None:
        answer = tenant.call("POST", "/v1/actions", action_body(endpoint, **overrides))
        assert answer.status_code == 422, answer.body
        assert [e["field"] for e in answer.json_body["errors"]] == [field], answer.json_body

    refused("auth", auth={"type": "bearer"})
    refused("headers", headers={"Authorization": "Bearer x"})
    refused("url", url="https://x.example/{% include 'a' %}")
    refused("success_json_value", success_json_field="status")
    refused("retry_statuses", success_statuses=[200, 503], retry_statuses=[503])
    listed = tenant.ok("POST", "/v1/lists", {"name": "x"}, status=201)
    answer = tenant.call("POST", "/v1/campaigns", campaign_body(listed["id"], channel="http"))
    assert answer.status_code == 422 and answer.json_body["errors"][0]["field"] == "action_id"
    assert tenant.call("DELETE", f"/v1/actions/{metadata['id']}").status_code == 204
    assert tenant.call("GET", f"/v1/actions/{metadata['id']}").status_code == 404


def test_a_request_that_cannot_be_made_fails_that_recipient_without_a_send(
    harness: Harness, endpoint: FakeEndpoint
) -> None:
    body = action_body(endpoint, headers={"X-Name": "{{ first_name }}"}, auth={})
    action = harness.tenant.ok("POST", "/v1/actions", body, status=201)
    result = harness.tenant.ok(
        "POST", f"/v1/actions/{action['id']}/test", {"data": {"id": "x", "phone": "+1", "first_name": "Zoë\n"}}
    )
    assert result["outcome"] == "failed" and "cannot be made" in result["error"], result
    assert endpoint.requests == []


def test_a_redirect_is_the_endpoints_answer_and_the_secret_goes_nowhere_else(
    harness: Harness, endpoint: FakeEndpoint
) -> None:
    action = harness.tenant.ok("POST", "/v1/actions", action_body(endpoint), status=201)
    endpoint.script(status=307, headers={"Location": endpoint.base_url + "/elsewhere"})
    result = harness.tenant.ok("POST", f"/v1/actions/{action['id']}/test", {"data": {"id": "c1", "phone": "+1"}})
    assert result["status"] == 307 and result["outcome"] == "failed", result
    assert endpoint.paths() == ["/crm/c1"], "not followed, so the bearer secret went to no other URL"
