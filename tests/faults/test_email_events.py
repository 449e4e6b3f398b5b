"""SES's email events through the EventBridge handler (decision 44), on a real email campaign on moto: each
event is SES's documented record (tests/fixtures/ses_events), made about a message the campaign really sent
(its SES message id, its headers as moto kept them, the account's configuration set)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.channels import ses as ses_channel
from chalicelib.channels.ses import SesEmail
from tests.faults.harness import Harness
from tests.faults.test_email_channel import email_campaign, email_rows, sent_mail

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ses_events"


@pytest.fixture
def ses() -> Any:
    client = boto3.client("sesv2", region_name="us-east-1")
    client.create_email_identity(EmailIdentity="mail.example.com")
    return client


def event_about(name: str, message_id: str, to: str, account: str, **tags: str) -> dict[str, Any]:
    """SES's sample event of this type, about the message SES (moto) sent to `to` with this id."""
    event = copy.deepcopy(json.loads((FIXTURES / f"{name}.json").read_text()))
    mail = event["detail"]["mail"]
    sent = next((m for m in sent_mail() if m["To"] == to), None)
    mail["messageId"], mail["destination"] = message_id, [to]
    mail["headers"] = [{"name": k, "value": str(v)} for k, v in sent.items()] if sent else []
    configuration_set = ses_channel.configuration_set_name(account)
    mail["tags"] = {"ses:configuration-set": [configuration_set], **{k: [v] for k, v in tags.items()}}
    event["resources"] = [f"arn:aws:ses:us-east-1:123456789012:configuration-set/{configuration_set}"]
    for key in ("bounce", "complaint"):
        if key in event["detail"]:
            listed = event["detail"][key]["bouncedRecipients" if key == "bounce" else "complainedRecipients"]
            for recipient in listed:
                recipient["emailAddress"] = to
    return event


def account_of(campaign_id: str) -> str:
    from chalicelib.store import campaigns

    return str(campaigns.owner_of(campaign_id))


def deliver(harness: Harness, event: dict[str, Any]) -> None:
    harness.app.email_events(event, None)


def suppressed(harness: Harness) -> dict[str, dict[str, Any]]:
    page = harness.tenant.ok("GET", "/v1/suppressions?channel=email&limit=100")
    return {item["destination"]: item for item in page["items"]}


def sent_campaign(harness: Harness, count: int) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    created = email_campaign(harness.tenant, email_rows(count))
    harness.tenant.ok("POST", f"/v1/campaigns/{created['id']}/start")
    campaign = harness.run(created["id"])
    assert campaign["counters"]["succeeded"] == count
    return campaign, {o["recipient_id"]: o for o in harness.outcomes(created["id"])}


def counters(harness: Harness, campaign_id: str) -> dict[str, int]:
    harness.stream()
    found = harness.tenant.ok("GET", f"/v1/campaigns/{campaign_id}")["counters"]
    return {name: found[name] for name in ("succeeded", "delivered", "read", "undelivered")}


def test_bounces_complaints_deliveries_and_opens_move_the_deliveries_and_suppress_for_good(
    harness: Harness, ses: Any
) -> None:
    campaign, outcomes = sent_campaign(harness, 5)
    account = account_of(campaign["id"])

    def about(name: str, rid: str) -> dict[str, Any]:
        one = outcomes[rid]
        return event_about(name, one["provider_message_id"], one["destination"], account)

    for event in (
        about("bounce_permanent", "r0"),
        about("bounce_transient", "r1"),
        about("delivery", "r2"),
        about("complaint", "r2"),
        about("delivery", "r3"),
        about("open", "r3"),
    ):
        deliver(harness, event)

    assert counters(harness, campaign["id"]) == {"succeeded": 5, "delivered": 2, "read": 1, "undelivered": 2}
    seen = {o["recipient_id"]: o for o in harness.outcomes(campaign["id"])}
    assert seen["r0"]["receipt"] == "undeliverable" and "Permanent/General" in seen["r0"]["receipt_error"]
    assert seen["r1"]["receipt"] == "undeliverable" and "MailboxFull" in seen["r1"]["receipt_error"]
    assert seen["r3"]["receipt"] == "read" and seen["r3"]["delivered_at"] and seen["r3"]["read_at"]
    assert seen["r4"]["receipt"] is None
    listed = suppressed(harness)
    assert sorted(listed) == ["Person.0@example.org", "Person.2@example.org"], "a soft bounce suppresses nothing"
    assert listed["Person.0@example.org"]["source"] == "bounce" and listed["Person.0@example.org"]["scope"] == "email"
    assert listed["Person.2@example.org"]["source"] == "complaint"

    # Each again, and the delivery after the open: nothing more.
    for event in (about("bounce_permanent", "r0"), about("open", "r3"), about("delivery", "r3")):
        deliver(harness, event)
    assert counters(harness, campaign["id"]) == {"succeeded": 5, "delivered": 2, "read": 1, "undelivered": 2}
    assert suppressed(harness) == listed
    assert harness.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/recount")["drift"] == {}

    # The next email campaign to the same people skips the bounced and the complaining address.
    _, later = sent_campaign_skipping(harness, 5, skipped=2)
    assert {rid for rid, o in later.items() if o["state"] == "skipped"} == {"r0", "r2"}
    assert {o["skip_reason"] for o in later.values() if o["state"] == "skipped"} == {"opted_out"}


def sent_campaign_skipping(harness: Harness, count: int, skipped: int) -> tuple[Any, dict[str, dict[str, Any]]]:
    created = email_campaign(harness.tenant, email_rows(count))
    harness.tenant.ok("POST", f"/v1/campaigns/{created['id']}/start")
    campaign = harness.run(created["id"])
    assert campaign["counters"]["succeeded"] == count - skipped
    assert campaign["counters"]["skipped_by_reason"] == {"opted_out": skipped}
    return campaign, {o["recipient_id"]: o for o in harness.outcomes(created["id"])}


def test_an_event_before_the_send_is_recorded_applies_and_stays(
    harness: Harness, ses: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_send = SesEmail.send

    def send_then_delivered(self: SesEmail, message: Any) -> Any:
        outcome = real_send(self, message)  # SES took it; its Delivery event comes before the outcome is written
        account = account_of(message.idempotency_key.partition(":")[0])
        deliver(harness, event_about("delivery", str(outcome.provider_message_id), message.to, account))
        return outcome

    monkeypatch.setattr(SesEmail, "send", send_then_delivered)
    campaign, outcomes = sent_campaign(harness, 3)

    assert {o["receipt"] for o in outcomes.values()} == {"delivered"}
    assert all(o["state"] == "succeeded" and o["delivered_at"] for o in outcomes.values())
    assert counters(harness, campaign["id"]) == {"succeeded": 3, "delivered": 3, "read": 0, "undelivered": 0}


def test_an_unknown_message_is_kept_and_a_bounce_of_no_campaign_still_suppresses(harness: Harness, ses: Any) -> None:
    account = account_of(email_campaign(harness.tenant, email_rows(1))["id"])  # the account's configuration set
    stranger = event_about("delivery", "0100018e-unknown-000000", "nobody@example.net", account)
    stranger["detail"]["mail"]["tags"].update(campaign=["cmp_0000000000000000ffff"], recipient=["x"], attempt=["1"])
    deliver(harness, stranger)
    bounce = event_about("bounce_permanent", "0100018e-transactional-000000", "Gone@Example.net", account)
    deliver(harness, bounce)

    table = boto3.client("dynamodb", region_name="us-east-1")
    for message_id, status in (
        ("0100018e-unknown-000000", "delivered"),
        ("0100018e-transactional-000000", "undeliverable"),
    ):
        kept = table.get_item(
            TableName=harness.env["MAIN_TABLE"], Key={"pk": {"S": f"RECEIPT#{message_id}"}, "sk": {"S": status}}
        )
        assert "Item" in kept, (message_id, status)
    listed = suppressed(harness)
    assert list(listed) == ["Gone@example.net"] and listed["Gone@example.net"]["source"] == "bounce"

    # The same account's set name, but another stage's (or no set at all): suppressed nowhere here.
    other = event_about("bounce_permanent", "0100018e-other-000000", "else@example.net", account)
    other["detail"]["mail"]["tags"]["ses:configuration-set"] = [f"bulk-prod-{account}"]
    deliver(harness, other)
    del other["detail"]["mail"]["tags"]["ses:configuration-set"]
    deliver(harness, other)
    assert list(suppressed(harness)) == ["Gone@example.net"]


def test_the_accounts_configuration_set_publishes_its_events_to_eventbridge(harness: Harness, ses: Any) -> None:
    name = ses_channel.configuration_set_name(account_of(email_campaign(harness.tenant, email_rows(1))["id"]))
    found = ses.get_configuration_set_event_destinations(ConfigurationSetName=name)["EventDestinations"]
    assert [d["Name"] for d in found] == ["bulk-campaign-events"]
    assert sorted(found[0]["MatchingEventTypes"]) == ["BOUNCE", "CLICK", "COMPLAINT", "DELIVERY", "OPEN", "REJECT"]
    assert found[0]["EventBridgeDestination"]["EventBusArn"] == harness.env["SES_EVENT_BUS_ARN"]
    assert found[0]["EventBridgeDestination"]["EventBusArn"].endswith(":event-bus/default")
    email_campaign(harness.tenant, email_rows(1))  # made once: the second campaign's AlreadyExists is success
    assert len(ses.get_configuration_set_event_destinations(ConfigurationSetName=name)["EventDestinations"]) == 1
