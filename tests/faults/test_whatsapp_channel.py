"""WhatsApp campaigns through the Vonage Messages API: each recipient gets the approved template in the
campaign's language with its own parameters, at its WhatsApp destination (else its phone), whether or not
they wrote in the last 24 hours; text (a session message, tests/faults/test_whatsapp_sessions.py) only from a
number of the account."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from tests.faults.harness import Harness
from tests.utils import campaign_body, refused_campaign

WHATSAPP = {"template_name": "order_update", "locale": "pt_BR", "parameters": ["{{ first_name }}", "{{ order }}"]}


def rows(count: int) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        destinations = [{"type": "phone", "address": f"+1415555{i:04d}"}]
        if i % 2 == 0:  # even recipients have a WhatsApp number of their own, tried first
            destinations.append({"type": "whatsapp", "address": f"+5511955{i:06d}"})
        out.append({"id": f"w{i}", "destinations": destinations, "attributes": {"first_name": f"Ana{i}", "order": i}})
    return out


def whatsapp_campaign(harness: Harness, count: int, **overrides: Any) -> dict[str, Any]:
    tenant = harness.tenant
    listed = tenant.ok("POST", "/v1/lists", {"name": "wa"}, status=201)
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows(count)})
    body = campaign_body(listed["id"], channel="whatsapp", sender="+14155550100", whatsapp=WHATSAPP, **overrides)
    body.pop("template")
    created = tenant.ok("POST", "/v1/campaigns", body, status=201)
    return dict(tenant.ok("POST", f"/v1/campaigns/{created['id']}/start"))


def test_each_recipient_gets_the_template_with_its_own_parameters(harness: Harness) -> None:
    campaign = harness.run(whatsapp_campaign(harness, 4)["id"])

    assert campaign["status"] == "completed" and campaign["counters"]["succeeded"] == 4
    sent = {m["to"]: m for m in harness.provider.messages()}
    assert sorted(sent) == ["14155550001", "14155550003", "5511955000000", "5511955000002"]
    assert {m["channel"] for m in sent.values()} == {"whatsapp"}
    assert {m["message_type"] for m in sent.values()} == {"template"}
    assert json.loads(sent["5511955000002"]["text"]) == ["order_update", "pt_BR", ["Ana2", "2"]]
    assert harness.provider.stats()["duplicates"] == 0
    assert harness.provider.stats()["outside_window"] == 0  # nobody wrote: a template needs no window


def test_whatsapp_campaigns_send_templates_only(harness: Harness) -> None:
    tenant = harness.tenant
    listed = tenant.ok("POST", "/v1/lists", {"name": "x"}, status=201)

    refused = partial(refused_campaign, tenant, listed["id"])

    assert "24 hours" in refused("whatsapp", channel="whatsapp", sender="+14155550100", template=None)
    # Text is a session message (decision 46): from a number of the account only (this one is not).
    assert "POST /v1/numbers" in refused("sender", channel="whatsapp", sender="+14155550100")
    assert "not text" in refused("template", channel="whatsapp", sender="+14155550100", whatsapp=WHATSAPP)
    body = {"channel": "whatsapp", "whatsapp": WHATSAPP, "template": None}
    assert "Business number" in refused("sender", **body, sender="Acme")
    assert "only for a WhatsApp campaign" in refused("whatsapp", whatsapp=WHATSAPP)
    bad_name = {**WHATSAPP, "template_name": "Order Update"}
    refused("whatsapp.template_name", channel="whatsapp", sender="+14155550100", whatsapp=bad_name)


def test_a_clone_of_a_whatsapp_campaign_keeps_its_template(harness: Harness) -> None:
    original = whatsapp_campaign(harness, 1)
    clone = harness.tenant.ok("POST", f"/v1/campaigns/{original['id']}/clone", status=201)
    assert clone["channel"] == "whatsapp" and clone["whatsapp"] == {**WHATSAPP}
