"""Segments: each recipient gets the template and sender of the first segment it matches; one matching none
is skipped (`no_segment`) or gets the campaign's own text; counters per segment add up."""

from __future__ import annotations

from typing import Any

from tests.faults.harness import Harness
from tests.utils import campaign_body

SEGMENTS = [
    {
        "name": "gold",
        "conditions": [{"field": "attributes.tier", "op": "eq", "value": "gold"}],
        "template": "Gold {{ first_name }}: 30% off",
    },
    {
        "name": "brazil",
        "match": "any",
        "conditions": [
            {"field": "destinations.phone", "op": "starts_with", "value": "+55"},
            {"field": "locale", "op": "starts_with", "value": "pt"},
        ],
        "template": "Olá {{ first_name }}",
        "sender": "AcmeBR",
    },
    {
        "name": "loyal",
        "conditions": [{"field": "attributes.orders", "op": "gte", "value": 10}],
    },
]


def people() -> list[dict[str, Any]]:
    def one(rid: str, phone: str, **attributes: Any) -> dict[str, Any]:
        return {
            "id": rid,
            "destinations": [{"type": "phone", "address": phone}],
            "attributes": {"first_name": rid, **attributes},
        }

    return [
        one("ann", "+14155550001", tier="gold", orders=12),  # gold first, though loyal too
        one("bia", "+5511955000002", tier="silver"),  # brazil by number
        {**one("caio", "+14155550003"), "locale": "pt-PT"},  # brazil by locale (any)
        one("dan", "+14155550004", orders=10),  # loyal: the campaign's own text
        one("eve", "+14155550005", orders="lots"),  # text never compares as a number: no segment
        one("fay", "+14155550006"),  # no segment
    ]


def run(harness: Harness, **overrides: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    tenant = harness.tenant
    listed = tenant.ok("POST", "/v1/lists", {"name": "seg"}, status=201)
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": people()})
    body = campaign_body(listed["id"], segments=SEGMENTS, rate_per_second=200, **overrides)
    created = tenant.ok("POST", "/v1/campaigns", body, status=201)
    tenant.ok("POST", f"/v1/campaigns/{created['id']}/start")
    campaign = harness.run(created["id"])
    return campaign, {m["to"]: m for m in harness.provider.messages()}


def test_each_recipient_gets_its_first_segment_and_the_rest_are_skipped(harness: Harness) -> None:
    campaign, sent = run(harness, no_segment="skip")

    assert {to: (m["from"], m["text"]) for to, m in sent.items()} == {
        "14155550001": ("Acme", "Gold ann: 30% off"),
        "5511955000002": ("AcmeBR", "Olá bia"),
        "14155550003": ("AcmeBR", "Olá caio"),
        "14155550004": ("Acme", "Hi dan, 20% off today."),
    }
    counters = campaign["counters"]
    assert counters["succeeded"] == 4 and counters["skipped_by_reason"] == {"no_segment": 2}
    by_segment = {name: c["succeeded"] for name, c in campaign["segment_counters"].items()}
    assert by_segment == {"gold": 1, "brazil": 2, "loyal": 1}
    harness.settle(campaign, 6)


def test_recipients_matching_no_segment_get_the_campaign_text_by_default(harness: Harness) -> None:
    campaign, sent = run(harness)

    assert campaign["counters"]["succeeded"] == 6
    assert sent["14155550005"]["text"] == "Hi eve, 20% off today."


def test_a_condition_with_a_value_its_operator_cannot_take_is_refused(harness: Harness) -> None:
    listed = harness.tenant.ok("POST", "/v1/lists", {"name": "x"}, status=201)
    bad = [{"name": "x", "conditions": [{"field": "attributes.orders", "op": "gt", "value": "ten"}]}]
    answer = harness.tenant.call("POST", "/v1/campaigns", campaign_body(listed["id"], segments=bad))
    assert answer.status_code == 422
    assert answer.json_body["errors"][0]["field"] == "segments.0.conditions.0.value", answer.json_body
    assert "compares numbers" in answer.json_body["errors"][0]["reason"]


def test_a_retried_recipient_keeps_its_segment(harness: Harness) -> None:
    # The retry's claim writes the segment again (SEGMENT is a DynamoDB reserved word: once a ValidationException
    # that dead-lettered the chunk and failed the recipient unsent).
    harness.provider.configure(scripted_by_number={"14155550001": [503]})
    campaign, sent = run(harness, no_segment="skip")

    assert sent["14155550001"]["text"] == "Gold ann: 30% off"
    assert campaign["counters"]["succeeded"] == 4 and campaign["counters"]["failed"] == 0
    assert campaign["segment_counters"]["gold"]["succeeded"] == 1
    ann = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/recipients/ann")
    assert [h["outcome"] for h in ann["history"]] == ["retry", "succeeded"]
    harness.settle(campaign, 6)
