"""Replies and receipts through the provider's signed webhooks (decision 40), played for real: the fake
provider posts each recipient's message and each delivery receipt over HTTP, signed as Vonage signs them,
to the bridge in front of the real routes (tests/faults/webhooks.py).

- 50 STOPs (in any case, with punctuation, in French) while a campaign of 1,000 is running: no later message reaches
  the number, each is counted `opted_out`, the counters still add up; START lifts it; HELP answers.
- Receipts: delivered and undeliverable counted beside the outcomes (and per variant); an `unknown` send a
  receipt proves taken becomes succeeded, never resent; repeated, late and unmatched ones
  change nothing (an unmatched one is kept); a replayed callback is refused."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from infra.local.fake_provider import FakeProvider
from infra.local.fake_voice import sign
from tests.faults.harness import Harness
from tests.faults.webhooks import HELP_TEXT, NUMBER, SIGNATURE_SECRET, EventBridge
from tests.utils import valid_phone


def start(harness: Harness, count: int, **overrides: Any) -> dict[str, Any]:
    harness.tenant.ok("POST", "/v1/numbers", {"number": NUMBER, "help_text": HELP_TEXT}, status=201)
    return harness.campaign(count, sender=NUMBER, retry_policy=None, **overrides)


def sent_to(provider: FakeProvider) -> dict[str, list[float]]:
    """When each number was sent a message, as the provider accepted them."""
    times: dict[str, list[float]] = {}
    for message in provider.messages():
        times.setdefault("+" + message["to"], []).append(float(message["accepted_at"]))
    return times


STOPS = ["STOP", "stop", " Stop! ", "ARRÊT", "arret.", "Unsubscribe", "opt-out", "QUIT", "Stop all", "BAJA"]


def test_stop_while_the_campaign_runs_ends_every_later_message_and_start_lifts_it(
    harness: Harness, webhooks: EventBridge, provider: FakeProvider
) -> None:
    count = 1000
    campaign = start(harness, count, rate_per_second=100)
    numbers = [valid_phone(i) for i in range(count)]
    stopped: list[str] = []
    applied_at: list[float] = []

    def reply_stop(round_number: int) -> None:
        if round_number != 1:
            return
        already = sent_to(provider)
        waiting = [n for n in numbers if n not in already]
        assert len(waiting) >= 200, "the campaign should still be sending when the replies come"
        stopped.extend(waiting[-100:][::2])  # 50 recipients yet to be sent to
        for i, number in enumerate(stopped):
            provider.inbound(number, NUMBER, STOPS[i % len(STOPS)])
        webhooks.deliver(harness.tenant)
        applied_at.append(time.time())

    final = harness.run(campaign["id"], rounds=400, on_round=reply_stop)

    assert len(stopped) == 50 and webhooks.results[("inbound", "opted_out")] == 50, webhooks.results
    counters = harness.settle(final, count)
    times = sent_to(provider)
    # Nothing reaches a number later than 2 s after its STOP was taken; the rest were skipped, counted.
    late = {n: t for n in stopped for t in times.get(n, []) if t > applied_at[0] + 2}
    assert late == {}, late
    skipped = [n for n in stopped if n not in times]
    assert len(skipped) >= 40, f"most STOPs came before their sends: {len(skipped)}"
    assert counters["skipped_by_reason"] == {"opted_out": len(skipped)}
    outcomes = {o["recipient_id"]: o for o in harness.outcomes(campaign["id"])}
    assert {outcomes[n]["skip_reason"] for n in skipped} == {"opted_out"}
    # The suppressions are listed; START from one of them lifts theirs.
    opted = harness.tenant.ok("GET", "/v1/events?type=recipient.opted_out&limit=100")["items"]
    assert sorted(e["data"]["destination"] for e in opted) == sorted(stopped)
    listed = harness.tenant.ok("GET", "/v1/suppressions?channel=sms&limit=100")["items"]
    assert sorted(s["destination"] for s in listed) == sorted(stopped)
    assert {s["source"] for s in listed} == {"inbound"}
    provider.inbound(stopped[0], NUMBER, "Start")
    webhooks.deliver(harness.tenant)
    assert webhooks.results[("inbound", "opted_in")] == 1
    assert harness.tenant.ok("GET", f"/v1/suppressions?destination=%2B{stopped[0][1:]}")["items"] == []


def test_help_is_answered_once_a_number_no_account_has_is_refused_and_a_replay_changes_nothing(
    harness: Harness, webhooks: EventBridge, provider: FakeProvider
) -> None:
    harness.tenant.ok("POST", "/v1/numbers", {"number": NUMBER, "help_text": HELP_TEXT}, status=201)
    provider.inbound(valid_phone(9), NUMBER, "help?")
    webhooks.deliver(harness.tenant)
    helped = [m for m in provider.messages() if m["to"] == valid_phone(9)[1:]]
    assert [(m["from"], m["text"]) for m in helped] == [(NUMBER[1:], HELP_TEXT)]
    assert webhooks.results[("inbound", "helped")] == 1

    provider.inbound(valid_phone(1), "+14155550199", "STOP")
    webhooks.deliver(harness.tenant)
    assert webhooks.answered[404] >= 1 and harness.tenant.ok("GET", "/v1/suppressions")["items"] == []

    body = json.dumps(
        {"channel": "sms", "message_uuid": "a1b2", "to": NUMBER[1:], "from": valid_phone(2)[1:], "text": "STOP"}
    ).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {sign(body, SIGNATURE_SECRET)}"}
    post = harness.tenant.client.http.request
    assert post("POST", "/v1/webhooks/vonage/inbound", headers=headers, body=body).status_code == 200
    harness.tenant.ok("DELETE", f"/v1/suppressions?destination=%2B{valid_phone(2)[1:]}&channel=sms")
    replayed = post("POST", "/v1/webhooks/vonage/inbound", headers=headers, body=body)
    assert replayed.status_code == 401 and "replay" in json.loads(replayed.body)["detail"]
    forged = {**headers, "Authorization": f"Bearer {sign(body, 'not-the-secret-0123456789abcdef01234')}"}
    assert post("POST", "/v1/webhooks/vonage/inbound", headers=forged, body=body).status_code == 401
    assert harness.tenant.ok("GET", "/v1/suppressions")["items"] == []


def test_receipts_count_delivered_and_undelivered_and_late_repeated_or_unmatched_ones_change_nothing(
    harness: Harness, webhooks: EventBridge, provider: FakeProvider
) -> None:
    count = 20
    undelivered = {valid_phone(i)[1:]: "undeliverable" for i in range(3)}
    provider.configure(receipts_by_number={**undelivered, valid_phone(3)[1:]: "rejected"})
    arms = [{"name": "a", "weight": 50, "template": "A: hi"}, {"name": "b", "weight": 50, "template": "B: hi"}]
    campaign = start(harness, count, variants=arms)

    final = harness.run(campaign["id"], on_round=lambda _: webhooks.deliver(harness.tenant))
    harness.settle(final, count)
    webhooks.deliver(harness.tenant)
    harness.stream()
    counters = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")["counters"]

    assert (counters["succeeded"], counters["delivered"], counters["undelivered"], counters["read"]) == (20, 16, 4, 0)
    assert webhooks.results[("submitted", "applied")] == 20
    # Counted per A/B variant too: each variant's receipts add up to what it sent.
    by_variant = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")["variant_counters"]
    assert sum(v.get("delivered", 0) for v in by_variant.values()) == 16
    assert sum(v.get("undelivered", 0) for v in by_variant.values()) == 4
    for name, own in by_variant.items():
        assert own.get("delivered", 0) + own.get("undelivered", 0) == own["succeeded"], (name, own)
    outcomes = {o["recipient_id"]: o for o in harness.outcomes(campaign["id"])}
    gone = outcomes[valid_phone(0)]
    assert gone["receipt"] == "undeliverable" and "unreachable" in gone["receipt_error"]
    assert outcomes[valid_phone(5)]["receipt"] == "delivered" and outcomes[valid_phone(5)]["delivered_at"]

    # A late "submitted", a repeated "delivered", and one naming no campaign we know, each signed anew.
    first = next(m for m in provider.messages() if m["to"] == valid_phone(5)[1:])
    post = harness.tenant.client.http.request

    def receipt(status: str, client_ref: str) -> Any:
        body = json.dumps(
            {"message_uuid": first["message_uuid"], "status": status, "client_ref": client_ref, "channel": "sms"}
        ).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {sign(body, SIGNATURE_SECRET)}"}
        return json.loads(post("POST", "/v1/webhooks/vonage/status", headers=headers, body=body).body)["result"]

    assert receipt("submitted", first["client_ref"]) == "ignored"
    assert receipt("delivered", first["client_ref"]) == "ignored"
    assert receipt("delivered", "cmp_0000000000000000ffff:+14155550000:1") == "kept"
    harness.stream()
    again = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")["counters"]
    assert again == counters
    recount = harness.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/recount")
    assert recount["drift"] == {}, recount


@pytest.mark.provider_timeout(1)
def test_an_unknown_send_that_a_receipt_proves_taken_becomes_succeeded_without_a_resend(
    harness: Harness, webhooks: EventBridge, provider: FakeProvider
) -> None:
    count = 30
    provider.configure(timeout_after_accept_rate=0.3, timeout_after_accept_ms=1_500)
    campaign = start(harness, count)
    final = harness.run(campaign["id"])  # receipts held back: every timed-out send is unknown first
    timed_out = provider.stats()["timed_out_after_accept"]
    assert final["counters"]["unknown"] == timed_out > 0, final["counters"]
    webhooks.deliver(harness.tenant)  # the receipts: each names its attempt (client_ref)
    harness.stream()
    counters = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")["counters"]
    assert (counters["succeeded"], counters["unknown"], counters["delivered"]) == (count, 0, count), counters
    assert len(provider.messages()) == count  # nothing was sent again
    by_number = {m["to"]: m["message_uuid"] for m in provider.messages()}
    for outcome in harness.outcomes(campaign["id"]):
        assert outcome["state"] == "succeeded" and outcome["receipt"] == "delivered"
        assert outcome["provider_message_id"] == by_number[outcome["destination"][1:]], outcome
    recount = harness.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/recount")
    assert recount["drift"] == {}, recount
