"""WhatsApp session messages (decision 46): a WhatsApp campaign giving `template` text instead of an approved
template sends it only to recipients who wrote to the sending number on WhatsApp in the last 24 hours. The
fake provider keeps the window as Vonage does (a text outside it is refused 422, error 1340), and the people
write through it, signed, to the real inbound route (tests/faults/webhooks.py).

- Of 20 recipients, 8 wrote within the hour, one 25 hours ago, one by SMS, one to another number and 9 never:
  8 texts sent (only those), 12 skipped `no_session`, none refused by the provider.
- A window the service believes open but the provider does not (the item written directly) is refused at the
  send: with a fallback `on: [no_session]`, that recipient and those with no window go to SMS instead.
- A text campaign from a number the account has not registered is a 422 naming `sender`."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import pytest

from infra.local.fake_provider import FakeProvider
from tests.faults.harness import Harness
from tests.faults.webhooks import HELP_TEXT, NUMBER, EventBridge
from tests.utils import campaign_body, refused_campaign, valid_phone

OTHER_NUMBER = "+14155550177"  # another number of the account
TEXT = "Hi {{ first_name }}, your order has shipped"


def people(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"p{i}",
            "destinations": [
                {"type": "whatsapp", "address": valid_phone(i)},
                {"type": "phone", "address": valid_phone(i)},
            ],
            "attributes": {"first_name": f"Ana{i}"},
        }
        for i in range(count)
    ]


def register(harness: Harness) -> None:
    for number in (NUMBER, OTHER_NUMBER):
        harness.tenant.ok("POST", "/v1/numbers", {"number": number, "help_text": HELP_TEXT}, status=201)


def session_campaign(harness: Harness, count: int, **overrides: Any) -> dict[str, Any]:
    return harness.campaign(
        people(count), channel="whatsapp", sender=NUMBER, template=TEXT, retry_policy=None, **overrides
    )


def test_a_session_message_reaches_only_those_who_wrote_in_the_last_24_hours(
    harness: Harness, webhooks: EventBridge, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.store import aws

    reads: list[list[dict[str, Any]]] = []  # each BatchGetItem asked of the main table, its keys
    batch_get = aws.batch_get

    def counted(table: str, wanted: list[dict[str, Any]], **kw: Any) -> list[dict[str, Any]]:
        reads.append(wanted)
        return batch_get(table, wanted, **kw)

    monkeypatch.setattr(aws, "batch_get", counted)
    register(harness)
    count = 20
    wrote = [valid_phone(i) for i in range(8)]
    for number in wrote:
        provider.inbound(number, NUMBER, "Where is my order?", channel="whatsapp")
    provider.inbound(valid_phone(8), NUMBER, "Thanks!", channel="whatsapp", at=time.time() - 25 * 3600)
    provider.inbound(valid_phone(9), NUMBER, "Where is my order?")  # by SMS: no WhatsApp window
    provider.inbound(valid_phone(10), OTHER_NUMBER, "hello", channel="whatsapp")  # another number's window
    webhooks.deliver(harness.tenant)
    assert webhooks.results[("inbound", "noted")] == 11, webhooks.results

    campaign = session_campaign(harness, count)
    counters = harness.settle(harness.run(campaign["id"]), count)

    assert {k: counters[k] for k in ("succeeded", "failed", "unknown", "skipped", "expired")} == {
        "succeeded": 8,
        "failed": 0,
        "unknown": 0,
        "skipped": 12,
        "expired": 0,
    }
    assert counters["skipped_by_reason"] == {"no_session": 12}
    sent = provider.messages()
    assert sorted(m["to"] for m in sent) == sorted(n.removeprefix("+") for n in wrote)
    assert {(m["channel"], m["message_type"], m["from"]) for m in sent} == {("whatsapp", "text", NUMBER[1:])}
    assert {m["text"] for m in sent if m["to"] == wrote[3][1:]} == {"Hi Ana3, your order has shipped"}
    assert provider.stats()["outside_window"] == 0  # nothing was tried outside a window
    # The chunk read its 20 suppression keys and 20 session keys in one BatchGetItem (<= 100 keys: one request).
    checks = [keys for keys in reads if any("#WASESSION#" in str(k["pk"]) for k in keys)]
    assert len(checks) == 1 and len(checks[0]) == 40, [len(keys) for keys in checks]
    assert sum("#SUP#whatsapp.utility" in str(k["pk"]) for k in checks[0]) == 20
    outcomes = {o["recipient_id"]: o for o in harness.outcomes(campaign["id"])}
    assert {rid for rid, o in outcomes.items() if o.get("skip_reason") == "no_session"} == {
        f"p{i}" for i in range(8, count)
    }


def test_a_window_the_provider_refuses_and_the_closed_ones_fall_back_to_sms(
    harness: Harness, webhooks: EventBridge, provider: FakeProvider
) -> None:
    from chalicelib.store import numbers, sessions

    register(harness)
    provider.inbound(valid_phone(0), NUMBER, "hi", channel="whatsapp")
    webhooks.deliver(harness.tenant)
    # p1's window as the service sees it, but they never wrote to the provider: it refuses the text (1340).
    owner = numbers.owner(NUMBER)
    assert owner is not None
    sessions.opened(str(owner["account"]), NUMBER, valid_phone(1), time.time() - 3600)
    fallback = {"channel": "sms", "sender": "Acme", "template": "Ana, your order shipped", "on": ["no_session"]}
    campaign = session_campaign(harness, 3, fallback=fallback)
    counters = harness.settle(harness.run(campaign["id"]), 3)

    assert counters["succeeded"] == 3 and counters["failed"] == counters["skipped"] == 0, counters
    by_channel = sorted((m["channel"], m["message_type"], m["to"]) for m in provider.messages())
    assert by_channel == [
        ("sms", "text", valid_phone(1)[1:]),
        ("sms", "text", valid_phone(2)[1:]),
        ("whatsapp", "text", valid_phone(0)[1:]),
    ]
    assert provider.stats()["outside_window"] == 1  # p1's text, refused as Vonage refuses it
    history = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/recipients/p1")["history"]
    assert history[0].get("reason") == "no_session" and history[0].get("outcome") == "fallback", history
    assert "24-hour window" in str(history[0].get("error")), history


def test_without_a_fallback_the_providers_refusal_fails_the_recipient_for_good_with_its_reason(
    harness: Harness, webhooks: EventBridge, provider: FakeProvider
) -> None:
    from chalicelib.store import numbers, sessions

    register(harness)
    owner = numbers.owner(NUMBER)
    assert owner is not None
    sessions.opened(str(owner["account"]), NUMBER, valid_phone(0), time.time() - 3600)  # never wrote to Vonage
    retries = {"max_attempts": 3, "initial_delay_seconds": 1, "backoff_multiplier": 1, "max_delay_seconds": 1}
    campaign = harness.campaign(
        people(1),
        channel="whatsapp",
        sender=NUMBER,
        template=TEXT,
        retry_policy={**retries, "failover_on": ["rejected"]},
    )
    counters = harness.settle(harness.run(campaign["id"]), 1)

    assert counters["failed"] == 1 and counters["succeeded"] == counters["skipped"] == 0, counters
    assert provider.stats()["outside_window"] == 1  # tried once: neither retried nor failed over to the phone
    outcome = harness.outcomes(campaign["id"])[0]
    assert outcome["state"] == "failed" and "24-hour window" in outcome["last_error"], outcome


def test_a_session_campaign_from_a_number_the_account_has_not_registered_is_refused(harness: Harness) -> None:
    tenant = harness.tenant
    tenant.ok("POST", "/v1/numbers", {"number": NUMBER, "help_text": HELP_TEXT}, status=201)
    listed = tenant.ok("POST", "/v1/lists", {"name": "x"}, status=201)

    refused = partial(refused_campaign, tenant, listed["id"])

    assert "not a number of this account" in refused("sender", channel="whatsapp", sender="+14155550166")
    variants = [{"name": "a", "weight": 50}, {"name": "b", "weight": 50, "sender": "+14155550166"}]
    refused("variants.1.sender", channel="whatsapp", sender=NUMBER, variants=variants)
    whatsapp_fallback = {"channel": "whatsapp", "sender": "+14155550166", "template": "Hi"}
    refused("fallback.sender", fallback=whatsapp_fallback)
    listed_campaigns = tenant.ok("GET", "/v1/campaigns")["items"]
    assert listed_campaigns == []
    made = tenant.ok(
        "POST", "/v1/campaigns", campaign_body(listed["id"], channel="whatsapp", sender=NUMBER), status=201
    )
    assert made["whatsapp"] is None and made["template"] == campaign_body("x")["template"]
    # A draft's sender PATCHed to a number of nobody's is refused the same way; nothing changes.
    patched = tenant.call("PATCH", f"/v1/campaigns/{made['id']}", {"sender": "+14155550166"})
    assert patched.status_code == 422 and [e["field"] for e in patched.json_body["errors"]] == ["sender"]
    assert tenant.ok("GET", f"/v1/campaigns/{made['id']}")["sender"] == NUMBER
    clone = tenant.ok("POST", f"/v1/campaigns/{made['id']}/clone", status=201)
    assert clone["whatsapp"] is None and clone["template"] == made["template"] and clone["channel"] == "whatsapp"
