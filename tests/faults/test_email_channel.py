"""Email campaigns through Amazon SES v2 (moto's SES, which refuses an unverified sender as SES does): what
each recipient gets, what a misconfigured campaign is told, and what a refused account does to a run."""

from __future__ import annotations

import email
import json
from email.message import Message
from typing import Any

import boto3
import pytest

from tests.faults.harness import Harness
from tests.utils import Api, campaign_body

SENDER = "news@mail.example.com"


def email_rows(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"r{i}",
            "destinations": [
                {"type": "phone", "address": f"+1415555{i:04d}"},
                {"type": "email", "address": f"Person.{i}@Example.org"},
            ],
            "attributes": {"first_name": f"Ann{i}"},
        }
        for i in range(count)
    ]


EMAIL = {
    "subject": "{{ first_name }}, your March statement",
    "html": "<p>Hello <b>{{ first_name }}</b></p>",
    "from_name": "Acme News",
    "reply_to": "help@example.com",
    "unsubscribe_url": "https://acme.example/u/{{ id }}",
}


def email_campaign_answer(tenant: Api, content: dict[str, Any]) -> Any:
    listed = tenant.ok("POST", "/v1/lists", {"name": "mail"}, status=201)
    body = campaign_body(listed["id"], channel="email", sender=SENDER, template="Hi", email=content)
    return tenant.call("POST", "/v1/campaigns", body)


def email_campaign(tenant: Api, rows: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    listed = tenant.ok("POST", "/v1/lists", {"name": "mail"}, status=201)
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows})
    body = campaign_body(
        listed["id"],
        channel="email",
        sender=SENDER,
        template="Hello {{ first_name }}, your statement is ready ({{ email }}).",
        rate_per_second=200,
        **{"email": EMAIL, **overrides},
    )
    return dict(tenant.ok("POST", "/v1/campaigns", body, status=201))


def sent_mail() -> list[Message]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    backend = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    return [email.message_from_string(m.raw_data) for m in backend.sent_messages]


@pytest.fixture
def ses() -> Any:
    client = boto3.client("sesv2", region_name="us-east-1")
    client.create_email_identity(EmailIdentity="mail.example.com")  # moto verifies an identity at once
    return client


def test_each_recipient_gets_its_own_email_with_both_parts_and_a_one_click_unsubscribe(
    harness: Harness, ses: Any
) -> None:
    created = email_campaign(harness.tenant, email_rows(6))
    assert created["channel"] == "email" and created["email"]["subject"] == EMAIL["subject"]
    harness.tenant.ok("POST", f"/v1/campaigns/{created['id']}/start")

    campaign = harness.run(created["id"])

    assert campaign["status"] == "completed" and campaign["counters"]["succeeded"] == 6
    assert harness.provider.messages() == [], "no SMS went out for an email campaign"
    mail = {m["To"]: m for m in sent_mail()}
    assert sorted(mail) == [f"Person.{i}@example.org" for i in range(6)]  # the domain normalised, once each
    one = mail["Person.3@example.org"]
    assert one["Subject"] == "Ann3, your March statement"
    assert one["From"] == f"Acme News <{SENDER}>" and one["Reply-To"] == "help@example.com"
    assert one["List-Unsubscribe"] == "<https://acme.example/u/r3>"
    assert one["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert one.get_content_type() == "multipart/alternative"
    text, html = (part.get_payload(decode=True).decode() for part in one.get_payload())  # type: ignore[union-attr]
    assert text.strip() == "Hello Ann3, your statement is ready (Person.3@example.org)."
    assert "<b>Ann3</b>" in html
    outcomes = {o["recipient_id"]: o for o in harness.outcomes(created["id"])}
    assert outcomes["r3"]["destination"] == "Person.3@example.org" and outcomes["r3"]["provider_message_id"]
    sets = ses.list_configuration_sets()["ConfigurationSets"]
    assert len(sets) == 1 and sets[0].startswith("bulk-"), "the account's own configuration set"
    email_campaign(harness.tenant, email_rows(1))
    assert ses.list_configuration_sets()["ConfigurationSets"] == sets, "made once per account"


def test_a_sender_ses_no_longer_accepts_pauses_the_campaign_with_the_reason(harness: Harness, ses: Any) -> None:
    created = email_campaign(harness.tenant, email_rows(4))
    ses.delete_email_identity(EmailIdentity="mail.example.com")  # verified at creation, gone by the send
    harness.tenant.ok("POST", f"/v1/campaigns/{created['id']}/start")

    harness.run(created["id"], rounds=5)

    campaign = harness.tenant.ok("GET", f"/v1/campaigns/{created['id']}")
    assert campaign["status"] == "paused", campaign
    assert "not verified" in campaign["pause_reason"].lower() or "authority" in campaign["pause_reason"].lower()
    assert campaign["counters"]["failed"] == 0, "no recipient pays for the account's refusal"
    assert sent_mail() == []


def test_email_campaigns_are_checked_against_ses_and_the_channel(harness: Harness, ses: Any) -> None:
    tenant = harness.tenant
    listed = tenant.ok("POST", "/v1/lists", {"name": "x"}, status=201)

    def refused(field: str, **overrides: Any) -> str:
        body = campaign_body(listed["id"], **overrides)
        answer = tenant.call("POST", "/v1/campaigns", body)
        assert answer.status_code == 422, answer.body
        problem = answer.json_body
        assert [e["field"] for e in problem["errors"]] == [field], problem
        return str(problem["errors"][0]["reason"])

    email = {"channel": "email", "email": EMAIL}
    assert "not an identity verified in SES" in refused("sender", **email, sender="news@elsewhere.example")
    assert "From address" in refused("sender", **email, sender="not an address")
    assert "subject" in refused("email.subject", channel="email", sender=SENDER)
    assert "unsubscribe" in refused(
        "email.unsubscribe_url", channel="email", sender=SENDER, category="marketing", email={"subject": "Hi"}
    )
    plain_link = {"subject": "Hi", "unsubscribe_url": "http://acme.example/u/{{ id }}"}
    assert "https" in refused("email.unsubscribe_url", channel="email", sender=SENDER, email=plain_link)
    assert "only for an email campaign" in refused("email", email=EMAIL)
    assert "20 characters" in refused("sender", sender="a-very-long-sender-name-indeed")
    variants = [{"name": "a", "weight": 50}, {"name": "b", "weight": 50, "sender": "other@elsewhere.example"}]
    assert "not an identity verified" in refused("variants.1.sender", **email, sender=SENDER, variants=variants)


def test_an_email_template_gives_each_recipient_its_locales_subject_and_html(harness: Harness, ses: Any) -> None:
    tenant = harness.tenant
    template = tenant.ok(
        "POST",
        "/v1/templates",
        {
            "name": "statement",
            "channel": "email",
            "content": {"text": "Hello {{ first_name }}", "subject": "Your statement", "html": "<p>Hi</p>"},
            "locales": {"pt-BR": {"text": "Olá {{ first_name }}", "subject": "Seu extrato, {{ first_name }}"}},
        },
        status=201,
    )
    preview = tenant.ok(
        "POST", f"/v1/templates/{template['id']}/preview", {"data": {"first_name": "Ana"}, "locale": "pt-BR"}
    )
    assert (preview["subject"], preview["html"], preview["segments"]) == ("Seu extrato, Ana", "<p>Hi</p>", None)

    rows = email_rows(2)
    rows[1]["locale"] = "pt-BR"
    listed = tenant.ok("POST", "/v1/lists", {"name": "tpl"}, status=201)
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows})
    body = campaign_body(listed["id"], channel="email", sender=SENDER, template_id=template["id"], rate_per_second=200)
    body.pop("template")
    created = tenant.ok("POST", "/v1/campaigns", body, status=201)
    assert created["email"]["subject"] == "Your statement"
    tenant.ok("POST", f"/v1/campaigns/{created['id']}/start")
    assert harness.run(created["id"])["counters"]["succeeded"] == 2

    mail = {m["To"]: m for m in sent_mail()}
    assert mail["Person.0@example.org"]["Subject"] == "Your statement"
    assert mail["Person.1@example.org"]["Subject"] == "Seu extrato, Ann1"  # pt-BR subject, default HTML part
    sms = tenant.ok("POST", "/v1/templates", {"name": "t", "content": {"text": "Hi"}}, status=201)
    answer = tenant.call("POST", "/v1/campaigns", {**body, "template_id": sms["id"]})
    assert answer.status_code == 422 and answer.json_body["errors"][0]["field"] == "template_id"
    bad = tenant.call("POST", "/v1/templates", {"name": "x", "content": {"text": "Hi", "subject": "S"}})
    assert bad.status_code == 422 and bad.json_body["errors"][0]["field"] == "content.subject"


def test_a_brand_wraps_each_email_with_its_logo_address_and_unsubscribe_link(harness: Harness, ses: Any) -> None:
    tenant = harness.tenant
    brand = tenant.ok(
        "POST",
        "/v1/brands",
        {
            "name": "Acme & Co",
            "logo_url": "https://acme.example/logo.png",
            "colours": {"primary": "#FF5500"},
            "postal_address": "1 Harbour St, Bristol BS1 4XX, UK",
            "footer_text": "You get this as an Acme member.",
        },
        status=201,
    )
    assert tenant.ok("GET", f"/v1/brands/{brand['id']}")["colours"]["primary"] == "#FF5500"
    missing = email_campaign_answer(tenant, {**EMAIL, "brand_id": "brd_00000000000000000000"})
    assert missing.status_code == 422 and json.loads(missing.body)["errors"][0]["field"] == "email.brand_id"
    created = email_campaign(tenant, email_rows(2), email={**EMAIL, "brand_id": brand["id"]})
    assert tenant.call("DELETE", f"/v1/brands/{brand['id']}").status_code == 204  # the campaign keeps its copy
    tenant.ok("POST", f"/v1/campaigns/{created['id']}/start")

    campaign = harness.run(created["id"])

    assert campaign["counters"]["succeeded"] == 2
    one = {m["To"]: m for m in sent_mail()}["Person.1@example.org"]
    text, html = (part.get_payload(decode=True).decode() for part in one.get_payload())  # type: ignore[union-attr]
    assert '<img src="https://acme.example/logo.png" alt="Acme &amp; Co"' in html
    assert "<p>Hello <b>Ann1</b></p>" in html and "border-bottom:3px solid #FF5500" in html
    assert "1 Harbour St, Bristol BS1 4XX, UK" in html
    assert '<a href="https://acme.example/u/r1" style="color:#FF5500">Unsubscribe</a>' in html
    assert text.rstrip().endswith(
        "--\nYou get this as an Acme member.\n1 Harbour St, Bristol BS1 4XX, UK\nUnsubscribe: https://acme.example/u/r1"
    )
