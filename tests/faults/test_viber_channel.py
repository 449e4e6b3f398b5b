"""Viber through the same Messages API adapter as SMS: a text to each recipient's phone, from the business's
Viber service id, tagged as Viber asks (`promotion` for a marketing campaign, else `transaction`)."""

from __future__ import annotations

from tests.faults.harness import Harness
from tests.utils import campaign_body, recipient_rows


def test_a_viber_campaign_sends_each_recipient_a_text_tagged_by_its_category(harness: Harness) -> None:
    listed = harness.tenant.ok("POST", "/v1/lists", {"name": "viber"}, status=201)
    harness.tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": recipient_rows(3)})
    body = campaign_body(
        listed["id"],
        channel="viber_service",
        sender="AcmeViberService",
        category="marketing",
        # A marketing campaign's default window is 08:00-21:00 local: all day here, whatever the hour of the run.
        window={"start": "00:00", "end": "23:59"},
        template="Hi {{ first_name }}, 20% off today.",
    )
    created = harness.tenant.ok("POST", "/v1/campaigns", body, status=201)
    harness.tenant.ok("POST", f"/v1/campaigns/{created['id']}/start")

    final = harness.run(created["id"])

    assert final["counters"]["succeeded"] == 3
    sent = harness.provider.messages()
    assert {(m["channel"], m["from"], m["category"]) for m in sent} == {
        ("viber_service", "AcmeViberService", "promotion")
    }
    assert sorted(m["text"] for m in sent) == [
        "Hi R0, 20% off today.",
        "Hi R1, 20% off today.",
        "Hi R2, 20% off today.",
    ]
