"""A segment that sends another channel is checked at creation as a campaign of that channel would be: each
problem is a 422 naming the segment's own field, and nothing is created."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.utils import Api, campaign_body, recipient_rows

GOLD = [{"field": "attributes.tier", "op": "eq", "value": "gold"}]


@pytest.mark.parametrize(
    ("segment", "field"),
    [
        (
            {"channel": "email", "sender": "news@unverified.example.com", "email": {"subject": "Hi"}},
            "segments.0.sender",
        ),
        ({"channel": "whatsapp", "sender": "14155550100"}, "segments.0.whatsapp"),
        ({"channel": "http"}, "segments.0.action_id"),
        ({"channel": "voice", "sender": "Acme", "voice": {}}, "segments.0.sender"),
        ({"email": {"subject": "Hi"}}, "segments.0"),  # content without a channel of its own
        ({"channel": "email", "email": {"subject": "Hi"}}, "segments.0"),  # no sender for it
    ],
)
def test_a_segment_s_channel_is_checked_like_a_campaign_s(tenant: Api, segment: dict[str, Any], field: str) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "tiers"}, status=201)
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": recipient_rows(2)})
    body = campaign_body(listed["id"], segments=[{"name": "gold", "conditions": GOLD, **segment}])
    answer = tenant.call("POST", "/v1/campaigns", body)
    problem = json.loads(answer.body)
    assert answer.status_code == 422, problem
    assert any(error["field"].startswith(field) for error in problem["errors"]), problem
    assert tenant.ok("GET", "/v1/campaigns")["items"] == []


def test_a_segment_s_action_is_copied_in_and_not_shown(tenant: Api) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "tiers"}, status=201)
    action = tenant.ok(
        "POST", "/v1/actions", {"name": "crm", "url": "https://crm.example.com/tasks", "body": "{}"}, status=201
    )
    segment = {"name": "gold", "conditions": GOLD, "channel": "http", "action_id": action["id"]}
    created = tenant.ok("POST", "/v1/campaigns", campaign_body(listed["id"], segments=[segment]), status=201)
    assert created["segments"][0]["channel"] == "http" and created["segments"][0]["action_id"] == action["id"]
    assert "segment_extras" not in created


def test_a_condition_that_can_never_hold_for_the_list_is_refused(tenant: Api) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "ages"}, status=201)
    rows = [{"phone": f"+1415555{n:04d}", "params": {"age": f"{30 + n}", "visits": n}} for n in range(3)]
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows})
    older = {"name": "older", "conditions": [{"field": "attributes.age", "op": "gt", "value": 40}]}
    answer = tenant.call("POST", "/v1/campaigns", campaign_body(listed["id"], segments=[older]))
    problem = json.loads(answer.body)
    assert answer.status_code == 422, problem
    assert problem["errors"][0]["field"] == "segments.0.conditions.0.op"
    assert "attributes.age is text" in problem["errors"][0]["reason"]
    frequent = {"name": "frequent", "conditions": [{"field": "attributes.visits", "op": "gte", "value": 2}]}
    tenant.ok("POST", "/v1/campaigns", campaign_body(listed["id"], segments=[frequent]), status=201)
