"""Channel fallback (decision 39): a recipient the campaign's channel did not reach gets one more attempt on
the fallback's channel, with its sender and content: WhatsApp refused for a number, then SMS; no phone at
all, then email. Counted at the provider and in SES: each recipient reached once, on one channel."""

from __future__ import annotations

import email
from typing import Any

import boto3
import pytest

from tests.faults.harness import Harness
from tests.utils import campaign_body

WHATSAPP = {"template_name": "points_expiring", "locale": "en_US", "parameters": ["{{ first_name }}"]}
NO_RETRIES = {"max_attempts": 1, "initial_delay_seconds": 1, "backoff_multiplier": 1, "max_delay_seconds": 1}


def start(harness: Harness, rows: list[dict[str, Any]], **body: Any) -> dict[str, Any]:
    listed = harness.tenant.ok("POST", "/v1/lists", {"name": "fallback"}, status=201)
    harness.tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows})
    definition = {k: v for k, v in campaign_body(listed["id"], **body).items() if v is not None}
    created = harness.tenant.ok("POST", "/v1/campaigns", definition, status=201)
    return dict(harness.tenant.ok("POST", f"/v1/campaigns/{created['id']}/start"))


def test_a_whatsapp_message_refused_for_a_number_falls_back_to_sms_once(harness: Harness) -> None:
    rows = [
        {
            "id": f"m{i}",
            "destinations": [{"type": "phone", "address": f"+1415555{i:04d}"}],
            "attributes": {"first_name": f"Ann{i}"},
        }
        for i in range(4)
    ]
    harness.provider.configure(scripted_by_number={"14155550001": [400], "14155550002": [400, 400]})
    campaign = start(
        harness,
        rows,
        channel="whatsapp",
        sender="+14155550100",
        template=None,
        whatsapp=WHATSAPP,
        retry_policy=NO_RETRIES,
        fallback={"channel": "sms", "sender": "Acme", "template": "{{ first_name }}, your points expire Friday."},
    )
    assert campaign["fallback"]["on"] == ["rejected", "no_destination"]

    final = harness.run(campaign["id"])

    assert final["status"] == "completed"
    assert (final["counters"]["succeeded"], final["counters"]["failed"]) == (3, 1)
    sent = sorted((m["to"], m["channel"]) for m in harness.provider.messages())
    assert sent == [
        ("14155550000", "whatsapp"),
        ("14155550001", "sms"),  # refused on WhatsApp, then reached by SMS
        ("14155550003", "whatsapp"),
    ]  # 14155550002 was refused on both: failed, never sent twice on one channel
    texts = {m["to"]: m["text"] for m in harness.provider.messages() if m["channel"] == "sms"}
    assert texts == {"14155550001": "Ann1, your points expire Friday."}
    outcomes = {o["recipient_id"]: o for o in harness.outcomes(campaign["id"])}
    history = [(h["channel"], h["outcome"]) for h in outcomes["m1"]["history"]]
    assert history == [("whatsapp", "fallback"), ("sms", "succeeded")]
    assert [(h["channel"], h["outcome"]) for h in outcomes["m2"]["history"]] == [
        ("whatsapp", "fallback"),
        ("sms", "failed"),
    ]


@pytest.fixture
def ses() -> Any:
    client = boto3.client("sesv2", region_name="us-east-1")
    client.create_email_identity(EmailIdentity="mail.example.com")
    return client


def test_recipients_without_a_phone_get_the_fallback_email_from_their_first_attempt(harness: Harness, ses: Any) -> None:
    rows = [
        {
            "id": "p1",
            "destinations": [{"type": "phone", "address": "+14155550011"}],
            "attributes": {"first_name": "Pat"},
        },
        {
            "id": "e1",
            "destinations": [{"type": "email", "address": "eve@example.org"}],
            "attributes": {"first_name": "Eve"},
        },
    ]
    campaign = start(
        harness,
        rows,
        template="Hi {{ first_name }}, your points expire Friday.",
        fallback={
            "channel": "email",
            "sender": "news@mail.example.com",
            "email": {"subject": "{{ first_name }}, points"},
        },
    )

    final = harness.run(campaign["id"])

    assert final["status"] == "completed" and final["counters"]["succeeded"] == 2
    assert [m["to"] for m in harness.provider.messages()] == ["14155550011"]
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    mail = [email.message_from_string(m.raw_data) for m in ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages]
    assert [(m["To"], m["Subject"]) for m in mail] == [("eve@example.org", "Eve, points")]
    outcomes = {o["recipient_id"]: o for o in harness.outcomes(campaign["id"])}
    assert outcomes["e1"]["attempts"] == 1 and outcomes["e1"]["history"][0]["channel"] == "email"
