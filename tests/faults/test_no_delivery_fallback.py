"""Fallback when no delivery comes (decision 48): WhatsApp, then SMS when no delivered receipt comes within
`within_minutes` (minutes played as seconds here), or at once when the receipt says undeliverable. Played for
real: the fake provider posts each message's status callbacks, signed, through the bridge to the real route,
and the release's tick sweeps the waits past their deadline. Counted at the provider: who got what, once."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from infra.local.fake_provider import FakeProvider
from infra.local.fake_voice import sign
from tests.faults.harness import Harness
from tests.faults.test_fallback_channel import NO_RETRIES, WHATSAPP, start
from tests.faults.webhooks import SIGNATURE_SECRET, EventBridge

MINUTE = 3.0  # seconds a minute lasts in this test


def settled(harness: Harness, final: dict[str, Any], count: int) -> dict[str, Any]:
    """What harness.settle checks, but for recipients reached on a second number: completed, each recipient
    in one final state counted so, nothing sent twice to a number, and the counters equal to a recount."""
    assert final["status"] == "completed", final
    outcomes = harness.outcomes(final["id"])
    states = Counter(o["state"] for o in outcomes)
    assert len(outcomes) == count and set(states) <= {"succeeded", "failed"}, states
    assert harness.provider.stats()["duplicates"] == 0
    assert set(Counter(m["to"] for m in harness.provider.messages()).values()) == {1}
    counters = dict(final["counters"])
    assert {k: counters[k] for k in states} == dict(states) and counters["in_flight"] == counters["queued"] == 0
    recount = harness.tenant.ok("POST", f"/v1/campaigns/{final['id']}/recount")
    assert recount["drift"] == {} and recount["after"] == counters, recount
    return counters


def rows() -> list[dict[str, Any]]:
    """Each recipient's WhatsApp number (1415555100i) apart from its phone (1415555200i), so the provider's
    receipts can be scripted per channel."""
    return [
        {
            "id": f"r{i}",
            "destinations": [
                {"type": "whatsapp", "address": f"+1415555100{i}"},
                {"type": "phone", "address": f"+1415555200{i}"},
            ],
            "attributes": {"first_name": f"Ann{i}"},
        }
        for i in range(5)
    ]


def whatsapp_then_sms(harness: Harness, within_minutes: int, **fallback_fields: Any) -> dict[str, Any]:
    """A WhatsApp template campaign to `rows()`, no retries, falling back to SMS when no delivery comes in time
    (`fallback_fields` add to or replace the fallback's)."""
    fallback = {"channel": "sms", "sender": "Acme", "on": ["no_delivery"], "within_minutes": within_minutes}
    fallback.update(fallback_fields)
    return start(
        harness,
        rows(),
        channel="whatsapp",
        sender="+14155550100",
        template=None,
        whatsapp=WHATSAPP,
        retry_policy=NO_RETRIES,
        fallback=fallback,
    )


def test_no_delivered_receipt_in_time_sends_the_fallback_once_and_a_late_one_changes_nothing(
    harness: Harness, webhooks: EventBridge, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.operations import receipt_waits

    monkeypatch.setattr(receipt_waits, "MINUTE_SECONDS", MINUTE)
    provider.configure(
        receipts_by_number={
            "14155551001": "submitted",  # r1: the carrier never reports: SMS after the deadline
            "14155551002": "undeliverable",  # r2: SMS at once, before the deadline
            "14155551003": "submitted",  # r3: SMS after the deadline; its late receipt changes nothing
            "14155551004": "rejected",  # r4: SMS at once; that SMS never reports: it stands, succeeded
            "14155552004": "submitted",
        }
    )
    campaign = whatsapp_then_sms(
        harness,
        within_minutes=1,
        template="{{ first_name }}, your points expire Friday.",
        on=["rejected", "no_delivery"],
    )
    assert campaign["fallback"]["within_minutes"] == 1

    seen: dict[str, Any] = {}

    def between_rounds(_: int) -> None:
        webhooks.deliver(harness.tenant)
        if "waiting" not in seen and len(provider.messages()) == 5:  # every WhatsApp message sent, none yet by SMS
            harness.stream()
            seen["waiting"] = {o["recipient_id"]: o for o in harness.outcomes(campaign["id"])}
            seen["counters"] = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")["counters"]

    harness.run(campaign["id"], rounds=600, on_round=between_rounds)
    webhooks.deliver(harness.tenant)  # the SMS messages' receipts
    harness.stream()
    counters = settled(harness, harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}"), 5)

    sent = Counter((m["to"], m["channel"]) for m in provider.messages())
    assert sent == {
        ("14155551000", "whatsapp"): 1,  # delivered (and read) in time: no fallback
        ("14155551001", "whatsapp"): 1,
        ("14155552001", "sms"): 1,  # no receipt within the minute: one SMS
        ("14155551002", "whatsapp"): 1,
        ("14155552002", "sms"): 1,  # undeliverable: one SMS
        ("14155551003", "whatsapp"): 1,
        ("14155552003", "sms"): 1,
        ("14155551004", "whatsapp"): 1,
        ("14155552004", "sms"): 1,
    }
    assert counters["succeeded"] == 5 and counters["failed"] == 0
    at = {m["to"]: float(m["accepted_at"]) for m in provider.messages()}
    silent = at["14155552001"] - at["14155551001"]  # the SMS after the WhatsApp message that never reported
    refused = at["14155552002"] - at["14155551002"]  # the SMS after the one reported undeliverable
    assert silent >= MINUTE and refused < silent, (silent, refused)
    # Sent, and waiting: in flight (not succeeded) until the receipt or the deadline; counted so.
    waiting = seen["waiting"]
    assert waiting["r0"]["state"] in ("in_flight", "succeeded")
    assert waiting["r1"]["state"] == waiting["r3"]["state"] == "in_flight"
    assert seen["counters"]["in_flight"] >= 2 and seen["counters"]["succeeded"] <= 3

    outcomes = {o["recipient_id"]: o for o in harness.outcomes(campaign["id"])}
    assert [(h["channel"], h["outcome"]) for h in outcomes["r0"]["history"]] == [("whatsapp", "succeeded")]
    assert outcomes["r0"]["receipt"] == "read"
    for rid in ("r1", "r2", "r3", "r4"):
        history = [(h["channel"], h["outcome"], h.get("reason")) for h in outcomes[rid]["history"]]
        assert history == [("whatsapp", "fallback", "no_delivery"), ("sms", "succeeded", None)], history
    assert "no delivered receipt within 1 minutes" in outcomes["r1"]["history"][0]["error"]
    assert "the receipt said undeliverable" in outcomes["r2"]["history"][0]["error"]
    assert "the receipt said rejected" in outcomes["r4"]["history"][0]["error"]
    # The SMS's own receipt replaced the WhatsApp one that said undeliverable: the recipient counts delivered.
    assert outcomes["r2"]["receipt"] == "delivered" and outcomes["r1"]["receipt"] == "delivered"
    assert outcomes["r4"]["receipt"] == "submitted"  # its SMS's, which never said more
    assert (counters["delivered"], counters["read"], counters["undelivered"]) == (4, 1, 0), counters

    # r3's WhatsApp message is reported delivered after all, long after its SMS went: nothing changes.
    whatsapp = next(m for m in provider.messages() if m["to"] == "14155551003")
    body = json.dumps(
        {
            "message_uuid": whatsapp["message_uuid"],
            "to": whatsapp["to"],
            "from": whatsapp["from"],
            "status": "delivered",
            "channel": "whatsapp",
            "client_ref": whatsapp["client_ref"],
            "timestamp": "2030-01-01T00:00:00Z",
        }
    ).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {sign(body, SIGNATURE_SECRET)}"}
    late = harness.tenant.client.http.request("POST", "/v1/webhooks/vonage/status", headers=headers, body=body)
    assert (late.status_code, json.loads(late.body)["result"]) == (200, "ignored")
    for _ in range(3):
        harness.run(campaign["id"], rounds=1)
    assert len(provider.messages()) == 9
    after = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")
    assert after["status"] == "completed" and after["counters"] == counters
    recount = harness.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/recount")
    assert recount["drift"] == {} and recount["after"] == counters, recount


def test_a_delivered_receipt_in_time_cancels_the_fallback_and_the_campaign_completes_on_it(
    harness: Harness, webhooks: EventBridge, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.operations import receipt_waits

    monkeypatch.setattr(receipt_waits, "MINUTE_SECONDS", 600.0)  # ten minutes a minute: only receipts end waits
    campaign = whatsapp_then_sms(harness, within_minutes=1440)

    final = harness.run(campaign["id"], rounds=600, on_round=lambda _: webhooks.deliver(harness.tenant))
    counters = settled(harness, final, 5)

    assert sorted(m["channel"] for m in provider.messages()) == ["whatsapp"] * 5
    assert (counters["succeeded"], counters["delivered"], counters["read"]) == (5, 5, 5)
    for outcome in harness.outcomes(campaign["id"]):
        assert [(h["channel"], h["outcome"]) for h in outcome["history"]] == [("whatsapp", "succeeded")]


def test_no_delivery_needs_its_minutes_and_a_channel_with_receipts(harness: Harness) -> None:
    listed = harness.tenant.ok("POST", "/v1/lists", {"name": "bad"}, status=201)
    base = {"list_id": listed["id"], "name": "x", "template": "Hi", "sender": "Acme", "rate_per_second": 10}
    email = {"channel": "email", "sender": "a@mail.example.com"}
    cases = [
        ({**email, "on": ["no_delivery"]}, "fallback", "within_minutes"),
        ({**email, "on": ["no_delivery"], "within_minutes": 0}, "fallback.within_minutes", "greater than or equal"),
        ({**email, "on": ["no_delivery"], "within_minutes": 1441}, "fallback.within_minutes", "less than or equal"),
        ({**email, "within_minutes": 5}, "fallback", "no_delivery"),
    ]
    for fallback, field, reason in cases:
        refused = harness.tenant.call("POST", "/v1/campaigns", {**base, "fallback": fallback})
        assert refused.status_code == 422, refused.body
        errors = {e["field"]: e["reason"] for e in json.loads(refused.body)["errors"]}
        assert reason in errors.get(field, ""), errors
    action = {"channel": "sms", "sender": "Acme", "on": ["no_delivery"], "within_minutes": 5}
    voice = {**base, "channel": "voice", "sender": "14155550100", "fallback": action}
    refused = harness.tenant.call("POST", "/v1/campaigns", voice)
    problem = json.loads(refused.body)
    assert refused.status_code == 422 and problem["errors"][0]["field"] == "fallback.on", problem
    assert harness.tenant.ok("GET", "/v1/campaigns")["items"] == []


def test_a_campaign_that_expires_while_sends_wait_lets_them_stand_and_sends_no_fallback(
    harness: Harness, webhooks: EventBridge, provider: FakeProvider
) -> None:
    from tests.faults.test_expiry import expire_soon

    provider.configure(receipts_by_number={f"1415555100{i}": "submitted" for i in range(5)})  # never delivered
    campaign = whatsapp_then_sms(harness, within_minutes=1440)
    for _ in range(100):
        harness.run(campaign["id"], rounds=1, on_round=lambda _: webhooks.deliver(harness.tenant))
        if len(provider.messages()) == 5:
            break
    harness.stream()
    waiting = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")["counters"]
    assert (waiting["in_flight"], waiting["succeeded"]) == (5, 0), waiting

    expire_soon(harness, campaign)
    final = harness.run(campaign["id"], on_round=lambda _: webhooks.deliver(harness.tenant))

    assert final["status"] == "expired", final
    counters = final["counters"]
    assert (counters["succeeded"], counters["in_flight"], counters["queued"], counters["expired"]) == (5, 0, 0, 0)
    assert sorted(m["channel"] for m in provider.messages()) == ["whatsapp"] * 5  # no fallback after the expiry
    assert {o["last_error"] for o in harness.outcomes(campaign["id"])} == {
        "the campaign expired while the send waited for its receipt: no fallback"
    }
    recount = harness.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/recount")
    assert recount["drift"] == {} and recount["after"] == counters, recount
