"""The event log, stats and webhooks refuse bad queries with a 422 naming the parameter (decision 41)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.utils import Api, campaign_body

pytestmark = pytest.mark.integration


def fields(answer: Any) -> list[str]:
    assert answer.status_code == 422, answer.body
    return [e["field"] for e in json.loads(answer.body)["errors"]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=yesterday", "since"),
        ("since=2026-11-26T09:00:00", "since"),  # no offset: which 09:00?
        ("since=2026-11-26T09:00:00Z&until=2026-11-25T09:00:00Z", "until"),
        ("since=2026-01-01T00:00:00Z&until=2026-11-01T00:00:00Z", "until"),  # past the log's 90 days
        ("type=delivery.bounced", "type"),
    ],
)
def test_a_bad_event_query_is_a_422_naming_the_parameter(tenant: Api, query: str, field: str) -> None:
    assert fields(tenant.call("GET", f"/v1/events?{query}")) == [field]


def test_an_empty_log_is_an_empty_page(tenant: Api) -> None:
    assert tenant.ok("GET", "/v1/events") == {"items": [], "next_page_token": None}


def test_stats_take_a_granularity_and_at_most_1500_points(tenant: Api) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "l"}, status=201)
    campaign = tenant.ok("POST", "/v1/campaigns", campaign_body(listed["id"]), status=201)
    path = f"/v1/campaigns/{campaign['id']}/stats"
    assert fields(tenant.call("GET", f"{path}?granularity=week")) == ["granularity"]
    too_long = "granularity=minute&since=2026-11-20T00:00:00Z&until=2026-11-26T00:00:00Z"
    assert fields(tenant.call("GET", f"{path}?{too_long}")) == ["until"]
    empty = tenant.ok("GET", f"{path}?granularity=day")
    assert (empty["granularity"], empty["series"]) == ("day", [])


def test_a_webhook_for_an_unknown_event_type_is_refused(tenant: Api) -> None:
    body = {"url": "https://hooks.example.com/x", "event_types": ["delivery.bounced"]}
    assert fields(tenant.call("POST", "/v1/webhooks", body))[0].startswith("event_types")
    assert tenant.ok("GET", "/v1/webhooks")["items"] == []
