"""Template resources for WhatsApp and voice (issue 9): a WhatsApp template names the approved template per
language, and a campaign pinning it sends each recipient its locale's language; a name the account's
templates know is refused in a language they do not give; a voice template gives the call's text and voice.
Viber, Messenger and MMS templates are text, previewed against their channel's limit."""

from __future__ import annotations

import json
from typing import Any

from tests.faults.harness import Harness
from tests.utils import Api, campaign_body

POINTS = {"template_name": "points_expiring", "locale": "en_US", "parameters": ["{{ first_name }}"]}
POINTS_PT = {"template_name": "points_expiring", "locale": "pt_BR", "parameters": ["{{ first_name }}"]}


def whatsapp_template(tenant: Api) -> dict[str, Any]:
    body = {
        "name": "points",
        "channel": "whatsapp",
        "content": {"whatsapp": POINTS},
        "locales": {"pt-BR": {"whatsapp": POINTS_PT}},
    }
    return dict(tenant.ok("POST", "/v1/templates", body, status=201))


def test_a_whatsapp_template_sends_each_recipient_its_locale_s_language(harness: Harness) -> None:
    tenant = harness.tenant
    template = whatsapp_template(tenant)
    preview = tenant.ok(
        "POST", f"/v1/templates/{template['id']}/preview", {"data": {"first_name": "Ana"}, "locale": "pt-BR"}
    )
    assert preview["locale"] == "pt-BR" and preview["whatsapp"]["locale"] == "pt_BR"
    assert preview["whatsapp"]["parameters"] == ["Ana"]
    listed = tenant.ok("POST", "/v1/lists", {"name": "wa"}, status=201)
    rows = [
        {
            "id": "ana",
            "destinations": [{"type": "phone", "address": "+5511955000001"}],
            "attributes": {"first_name": "Ana"},
            "locale": "pt-BR",
        },
        {
            "id": "bob",
            "destinations": [{"type": "phone", "address": "+14155550002"}],
            "attributes": {"first_name": "Bob"},
            "locale": "en-US",
        },
    ]
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows})
    body = campaign_body(listed["id"], channel="whatsapp", sender="+14155550100", template_id=template["id"])
    body.pop("template")
    created = tenant.ok("POST", "/v1/campaigns", body, status=201)
    assert created["whatsapp"]["template_name"] == "points_expiring" and created["template_version"] == 1
    tenant.ok("POST", f"/v1/campaigns/{created['id']}/start")

    final = harness.run(created["id"])

    assert final["counters"]["succeeded"] == 2
    sent = {m["to"]: json.loads(m["text"]) for m in harness.provider.messages()}
    assert sent == {
        "5511955000001": ["points_expiring", "pt_BR", ["Ana"]],
        "14155550002": ["points_expiring", "en_US", ["Bob"]],
    }


def test_a_whatsapp_language_the_account_s_templates_lack_is_refused(harness: Harness) -> None:
    tenant = harness.tenant
    whatsapp_template(tenant)
    listed = tenant.ok("POST", "/v1/lists", {"name": "wa"}, status=201)
    german = {**POINTS, "locale": "de"}
    body = campaign_body(listed["id"], channel="whatsapp", sender="+14155550100", whatsapp=german)
    body.pop("template")
    answer = tenant.call("POST", "/v1/campaigns", body)
    problem = json.loads(answer.body)
    assert answer.status_code == 422 and problem["errors"][0]["field"] == "whatsapp.locale", problem
    assert "approved in en_US, pt_BR; not de" in problem["errors"][0]["reason"]
    other = {**POINTS, "template_name": "not_registered_here", "locale": "de"}  # a name it does not know: taken
    tenant.ok("POST", "/v1/campaigns", {**body, "whatsapp": other}, status=201)


def test_templates_hold_what_their_channel_has(harness: Harness) -> None:
    tenant = harness.tenant
    cases = [
        ({"name": "x", "channel": "whatsapp", "content": {"text": "hi", "whatsapp": POINTS}}, "content.text"),
        ({"name": "x", "channel": "whatsapp", "content": {}}, "content.whatsapp"),
        ({"name": "x", "channel": "sms", "content": {"text": "hi", "whatsapp": POINTS}}, "content.whatsapp"),
        ({"name": "x", "channel": "voice", "content": {"voice": {"language": "en-GB"}}}, "content.text"),
        ({"name": "x", "channel": "sms", "content": {"text": "hi", "voice": {}}}, "content.voice"),
    ]
    for body, field in cases:
        answer = tenant.call("POST", "/v1/templates", body)
        problem = json.loads(answer.body)
        assert answer.status_code == 422 and problem["errors"][0]["field"] == field, (body, problem)
    voice = tenant.ok(
        "POST",
        "/v1/templates",
        {
            "name": "reminder",
            "channel": "voice",
            "content": {"text": "Hello {{ first_name }}", "voice": {"language": "en-GB", "style": 2}},
        },
        status=201,
    )
    preview = tenant.ok("POST", f"/v1/templates/{voice['id']}/preview", {"data": {"first_name": "Ann"}})
    assert preview["text"] == "Hello Ann" and preview["encoding"] is None


def test_viber_messenger_and_mms_templates_are_text_a_campaign_of_their_channel_pins(harness: Harness) -> None:
    """Templates for the Messages channels beside SMS (decision 47 left them out): text with its locales, checked
    against the channel's own limit in the preview, pinned only by a campaign of that channel; a Viber campaign
    pinning one sends each recipient their locale's text."""
    tenant = harness.tenant
    viber = {
        "name": "shipped",
        "channel": "viber_service",
        "content": {"text": "Hi {{ first_name }}, your order shipped."},
        "locales": {"pt-BR": {"text": "Oi {{ first_name }}, seu pedido saiu."}},
    }
    template = tenant.ok("POST", "/v1/templates", viber, status=201)
    long_text = {"name": "long", "channel": "messenger", "content": {"text": "x" * 700}}
    messenger = tenant.ok("POST", "/v1/templates", long_text, status=201)
    preview = tenant.ok("POST", f"/v1/templates/{messenger['id']}/preview", {})
    assert preview["warnings"] == ["700 characters, over the provider's limit of 640: sends would fail"]
    assert preview["segments"] is None  # not an SMS
    caption = {"name": "caption", "channel": "mms", "content": {"text": "Spring is here"}}
    tenant.ok("POST", "/v1/templates", caption, status=201)
    refused = tenant.call("POST", "/v1/templates", {**caption, "content": {"text": "x", "subject": "Hi"}})
    assert refused.status_code == 422 and json.loads(refused.body)["errors"][0]["field"] == "content.subject"

    listed = tenant.ok("POST", "/v1/lists", {"name": "viber"}, status=201)
    rows: list[dict[str, Any]] = [
        {"id": "ana", "destinations": [{"type": "phone", "address": "+5511955000001"}], "locale": "pt-BR"},
        {"id": "bob", "destinations": [{"type": "phone", "address": "+14155550002"}]},
    ]
    for row, name in zip(rows, ("Ana", "Bob"), strict=True):
        row["attributes"] = {"first_name": name}
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows})
    body = campaign_body(listed["id"], channel="viber_service", sender="AcmeViberService", template_id=template["id"])
    body.pop("template")
    wrong = tenant.call("POST", "/v1/campaigns", {**body, "channel": "messenger", "sender": "112233445566778"})
    assert wrong.status_code == 422 and json.loads(wrong.body)["errors"][0]["field"] == "template_id"
    created = tenant.ok("POST", "/v1/campaigns", body, status=201)
    tenant.ok("POST", f"/v1/campaigns/{created['id']}/start")

    assert harness.run(created["id"])["counters"]["succeeded"] == 2
    sent = {m["to"]: (m["channel"], m["text"]) for m in harness.provider.messages()}
    assert sent == {
        "5511955000001": ("viber_service", "Oi Ana, seu pedido saiu."),
        "14155550002": ("viber_service", "Hi Bob, your order shipped."),
    }
