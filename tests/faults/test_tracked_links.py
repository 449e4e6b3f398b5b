"""Tracked links and conversions through the handlers (decision 43): an SMS campaign with two variants whose
text tracks a personalised link; recipients follow their links (one twice, one by HEAD only, one forged);
customers report conversions (one retried with its Idempotency-Key). The campaign, its variants, the
recipients' deliveries, the event log and the stats over time all count them, and a recount agrees."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.faults.harness import Harness
from tests.utils import campaign_body, recipient_rows

pytestmark = pytest.mark.faults

BASE = "https://lnk.acme.example"
LINK = '{{ "https://acme.example/sale?c=" | append: first_name | track }}'
ARMS = [
    {"name": "a", "weight": 50, "template": "A: hi {{ first_name }}, 20% off: " + LINK},
    {"name": "b", "weight": 50, "template": "B: {{ first_name }}, our sale: " + LINK},
]


@pytest.fixture(autouse=True)
def links_base_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from chalicelib.settings import get_settings

    monkeypatch.setenv("LINKS_BASE_URL", BASE)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def follow(harness: Harness, link: str, method: str = "GET") -> Any:
    return harness.tenant.client.http.request(method, urlsplit(link).path, headers={})


def counters(harness: Harness, campaign_id: str) -> dict[str, Any]:
    return dict(harness.tenant.ok("GET", f"/v1/campaigns/{campaign_id}"))


def test_clicks_and_conversions_are_counted_per_campaign_variant_and_recipient_and_logged(harness: Harness) -> None:
    harness.with_events = True
    campaign = harness.campaign(10, variants=ARMS)
    final = harness.run(campaign["id"])
    harness.settle(final, 10)
    sent = {f"+{m['to']}": m["text"] for m in harness.provider.messages()}
    outcomes = {o["recipient_id"]: o for o in harness.outcomes(campaign["id"])}
    variant_of = {rid: "a" if text.startswith("A:") else "b" for rid, text in sent.items()}
    assert set(variant_of.values()) == {"a", "b"}
    link_of = {rid: text.rsplit(" ", 1)[1] for rid, text in sent.items()}
    for link in link_of.values():  # short and per recipient
        assert link.startswith(f"{BASE}/l/") and len(urlsplit(link).path) <= 45 and len(link) <= 70, link
    assert len(set(link_of.values())) == 10

    first, second, third, fourth = sorted(link_of)[:4]
    for rid, times in ((first, 2), (second, 1)):
        for _ in range(times):
            answer = follow(harness, link_of[rid])
            assert answer.status_code == 302, answer.body
            name = next(r["params"]["first_name"] for r in recipient_rows(10) if r["phone"] == rid)
            assert answer.headers["Location"] == f"https://acme.example/sale?c={name}"
            assert "no-store" in answer.headers["Cache-Control"]
    scanned = follow(harness, link_of[third], "HEAD")  # a link preview: redirected, not counted
    assert scanned.status_code == 302 and scanned.headers["Location"].startswith("https://acme.example/sale?c=")
    token = link_of[fourth].rsplit("/", 1)[1]
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    for bad in (f"/l/{forged}", "/l/nothing-of-ours", f"/l/{token[:10]}"):
        refused = harness.tenant.client.http.request("GET", bad, headers={})
        assert refused.status_code == 404 and refused.headers["Content-Type"] == "application/problem+json"
        assert json.loads(refused.body)["status"] == 404

    path = f"/v1/campaigns/{campaign['id']}/conversions"
    body = {"recipient_id": second, "goal": "purchase", "value": 12.5}
    kept = {"Idempotency-Key": "order-1"}
    made = harness.tenant.ok("POST", path, body, status=201, headers=kept)
    assert (made["conversions"], made["goal"], made["value"]) == (1, "purchase", 12.5)
    assert harness.tenant.ok("POST", path, body, status=201, headers=kept) == made  # a client's retry
    unknown = harness.tenant.call("POST", path, {"recipient_id": "+19999999999", "goal": "purchase"})
    assert unknown.status_code == 404
    for bad_body, field in (
        ({"recipient_id": second}, "goal"),
        ({"recipient_id": second, "goal": "purchase", "value": -1}, "value"),
        ({"recipient_id": second, "goal": "purchase", "occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at"),
        ({"recipient_id": second, "goal": "purchase", "occurred_at": "2026-01-01T00:00:00"}, "occurred_at"),
    ):
        refused = harness.tenant.call("POST", path, bad_body)
        assert refused.status_code == 422, refused.body
        assert [e["field"] for e in json.loads(refused.body)["errors"]] == [field]
    other = harness.tenant.new_account("other")
    assert other.call("POST", path, {"recipient_id": second, "goal": "purchase"}).status_code == 404

    harness.stream()
    harness.webhooks()
    now = counters(harness, campaign["id"])
    engaged = {k: now["counters"][k] for k in ("clicked", "clicks", "converted", "conversions")}
    assert engaged == {"clicked": 2, "clicks": 3, "converted": 1, "conversions": 1}
    expected: dict[str, dict[str, int]] = {"a": {}, "b": {}}
    for rid, clicks in ((first, 2), (second, 1)):
        arm = expected[variant_of[rid]]
        arm["clicks"] = arm.get("clicks", 0) + clicks
        arm["clicked"] = arm.get("clicked", 0) + 1
    expected[variant_of[second]]["conversions"] = 1
    for name, wanted in expected.items():
        got = now["variant_counters"][name]
        assert {k: got[k] for k in ("clicked", "clicks", "conversions")} == {
            "clicked": wanted.get("clicked", 0),
            "clicks": wanted.get("clicks", 0),
            "conversions": wanted.get("conversions", 0),
        }
    mine = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/recipients/{first.replace('+', '%2B')}")
    assert mine["clicks"] == 2 and mine["clicked_at"] and mine["conversions"] == 0
    theirs = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/recipients/{second.replace('+', '%2B')}")
    assert (theirs["clicks"], theirs["conversions"], theirs["conversion_goal"]) == (1, 1, "purchase")
    untouched = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/recipients/{third.replace('+', '%2B')}")
    assert untouched["clicks"] == 0 and untouched["clicked_at"] is None
    assert outcomes[third]["state"] == "succeeded"

    events = harness.tenant.ok("GET", f"/v1/events?campaign_id={campaign['id']}&type=recipient.clicked")["items"]
    assert sorted(e["recipient_id"] for e in events) == sorted([first, first, second])
    converted = harness.tenant.ok("GET", f"/v1/events?campaign_id={campaign['id']}&type=recipient.converted")
    (event,) = converted["items"]
    assert event["recipient_id"] == second and event["data"]["conversion_goal"] == "purchase"
    assert event["data"]["conversion_value"] == 12.5 and event["data"]["variant"] == variant_of[second]

    stats = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/stats?granularity=day")
    assert [(p["clicks"], p["conversions"]) for p in stats["series"]] == [(3, 1)]
    by_variant = stats["series"][0]["variants"]
    assert sum(v["clicks"] for v in by_variant.values()) == 3
    assert by_variant[variant_of[first]]["clicks"] >= 2
    harness._iterators.clear()  # the whole stream again: nothing counted twice
    harness.stream()
    assert counters(harness, campaign["id"])["counters"] == now["counters"]
    again = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/stats?granularity=day")
    assert [(p["clicks"], p["conversions"]) for p in again["series"]] == [(3, 1)]
    recount = harness.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/recount")
    assert recount["drift"] == {} and recount["after"] == now["counters"]


def test_the_template_preview_shows_the_tracked_link_and_a_bad_static_url_is_refused(harness: Harness) -> None:
    text = 'Sale: {{ "https://acme.example/sale" | track }} or {{ "https://acme.example/x?c=" | append: c | track }}'
    template = harness.tenant.ok("POST", "/v1/templates", {"name": "t", "content": {"text": text}}, status=201)
    preview = harness.tenant.ok("POST", f"/v1/templates/{template['id']}/preview", {"data": {"c": "A1"}})
    static, personal = preview["text"].removeprefix("Sale: ").split(" or ")
    assert static.startswith(f"{BASE}/l/") and len(static) == len(BASE) + 3 + 26
    assert personal.startswith(f"{BASE}/l/") and personal != static
    bad_text = '{{ "ftp://x.example" | track }}'
    bad = harness.tenant.call("POST", "/v1/templates", {"name": "t", "content": {"text": bad_text}})
    problem = json.loads(bad.body)
    assert bad.status_code == 422 and "track: 'ftp://x.example' is not an http" in problem["errors"][0]["reason"]
    listed = harness.tenant.ok("POST", "/v1/lists", {"name": "l"}, status=201)
    refused = harness.tenant.call(
        "POST", "/v1/campaigns", campaign_body(listed["id"], template='{{ "javascript:alert(1)" | track }}')
    )
    assert refused.status_code == 422 and json.loads(refused.body)["errors"][0]["field"] == "template"


def test_a_link_catalog_that_cannot_be_written_fails_the_recipient_unsent_and_says_why(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    from chalicelib.store import links as catalog

    def throttled(*args: Any, **kwargs: Any) -> None:
        error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
        raise ClientError(error, "UpdateItem")

    monkeypatch.setattr(catalog, "_put", throttled)
    campaign = harness.campaign(2, retry_policy=None, template="Sale: " + LINK)
    counters = harness.settle(harness.run(campaign["id"]), 2)
    assert counters["failed"] == 2 and harness.provider.messages() == []
    errors = {o["last_error"] for o in harness.outcomes(campaign["id"])}
    assert len(errors) == 1 and errors.pop().startswith("template: track: the link catalog could not be written")
