"""MMS, Viber and Messenger through the same Vonage Messages adapter as SMS (decision 47), played against the fake
provider, which holds every send to the published Messages API 1.4.0 description and posts each message's
statuses signed, through the bridge, to the real receipt route.

- MMS: each recipient's phone gets its A/B variant's image with its own caption; receipts delivered.
- Viber: a text with the campaign's ttl, tagged by its category; receipts delivered, then read.
- Messenger: a tagged text to each recipient's page-scoped id from the page id; one without a Messenger id gets
  the SMS fallback; as a segment's channel too; untagged (`update`) ones to people who never wrote are refused
  by the provider as Facebook refuses them, and fail `no_session`.
- Bad input: a 422 naming the field, and no campaign created."""

from __future__ import annotations

import json
from collections import Counter
from functools import partial
from typing import Any

from chalicelib.domain.variants import assign
from infra.local.fake_provider import FakeProvider
from tests.faults.harness import Harness
from tests.faults.webhooks import HELP_TEXT, NUMBER, EventBridge
from tests.utils import refused_campaign, valid_phone

PAGE = "112233445566778"  # the Facebook page id the Messenger campaigns send from
IMAGE = "https://cdn.acme.example/spring.png"


def psid(i: int) -> str:
    return f"{7_000_000_000_000_000 + i}"  # a 16-digit page-scoped id: longer than any phone number


def run_with_receipts(harness: Harness, webhooks: EventBridge, campaign: dict[str, Any], count: int) -> dict[str, Any]:
    """Run to completion with the receipts passed on each round; the settled counters once all came in."""
    final = harness.run(campaign["id"], on_round=lambda _: webhooks.deliver(harness.tenant))
    harness.settle(final, count)
    webhooks.deliver(harness.tenant)
    harness.stream()
    return dict(harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")["counters"])


def receipts(counters: dict[str, Any]) -> tuple[int, int, int]:
    return counters["delivered"], counters["read"], counters["undelivered"]


def test_an_mms_campaign_sends_each_phone_its_variants_image_with_its_caption(
    harness: Harness, webhooks: EventBridge, provider: FakeProvider
) -> None:
    arms = [
        {"name": "a", "weight": 50},
        {
            "name": "b",
            "weight": 50,
            "mms": {"image_url": "https://cdn.acme.example/b.jpg"},
            "template": "B {{ first_name }}",
        },
    ]
    campaign = harness.campaign(
        6, channel="mms", sender="+14155550100", mms={"image_url": IMAGE}, template="Hi {{ first_name }}", variants=arms
    )

    counters = run_with_receipts(harness, webhooks, campaign, 6)

    assert counters["succeeded"] == 6 and receipts(counters) == (6, 0, 0)
    sent = provider.messages()
    assert len(sent) == 6 and {(m["channel"], m["message_type"], m["from"]) for m in sent} == {
        ("mms", "image", "14155550100")
    }
    outcomes = {o["recipient_id"]: o for o in harness.outcomes(campaign["id"])}
    images = {"a": IMAGE, "b": "https://cdn.acme.example/b.jpg"}
    captions = {"a": "Hi R{}", "b": "B R{}"}
    for i in range(6):
        rid = valid_phone(i)
        arm = assign(campaign["id"], rid, arms, 0)
        assert isinstance(arm, dict)
        message = next(m for m in sent if "+" + m["to"] == rid)
        assert json.loads(message["text"]) == [images[arm["name"]], captions[arm["name"]].format(i)], message
        assert outcomes[rid]["state"] == "succeeded" and outcomes[rid]["receipt"] == "delivered"
        assert outcomes[rid]["provider_message_id"] == message["message_uuid"]
    assert webhooks.results[("submitted", "applied")] == 6 and webhooks.results[("delivered", "applied")] == 6
    assert provider.stats()["duplicates"] == 0


def test_a_viber_campaign_sends_texts_with_its_ttl_and_counts_their_reads(
    harness: Harness, webhooks: EventBridge, provider: FakeProvider
) -> None:
    campaign = harness.campaign(
        3, channel="viber_service", sender="AcmeViberService", viber={"ttl": 600}, category="transactional"
    )

    counters = run_with_receipts(harness, webhooks, campaign, 3)

    assert counters["succeeded"] == 3 and receipts(counters) == (3, 3, 0)
    sent = provider.messages()
    assert [m["options"] for m in sent] == [{"category": "transaction", "ttl": 600}] * 3
    assert sorted(m["text"] for m in sent) == [f"Hi R{i}, 20% off today." for i in range(3)]
    assert {o["receipt"] for o in harness.outcomes(campaign["id"])} == {"read"}


def messenger_rows(count: int, without: int = 0) -> list[dict[str, Any]]:
    """`count` recipients with a Messenger id (and a phone), then `without` with a phone only."""
    rows = [
        {
            "id": f"m{i}",
            "destinations": [{"type": "phone", "address": valid_phone(i)}, {"type": "messenger", "address": psid(i)}],
            "attributes": {"first_name": f"Ana{i}"},
        }
        for i in range(count)
    ]
    rows += [
        {
            "id": f"p{i}",
            "destinations": [{"type": "phone", "address": valid_phone(100 + i)}],
            "attributes": {"first_name": f"Bo{i}"},
        }
        for i in range(without)
    ]
    return rows


def test_a_messenger_campaign_sends_tagged_texts_to_page_scoped_ids_and_the_rest_by_sms(
    harness: Harness, webhooks: EventBridge, provider: FakeProvider
) -> None:
    campaign = harness.campaign(
        messenger_rows(3, without=1),
        channel="messenger",
        sender=PAGE,
        messenger={"category": "message_tag", "tag": "ACCOUNT_UPDATE"},
        template="Hi {{ first_name }}, your order shipped.",
        fallback={"channel": "sms", "sender": "Acme"},
    )

    counters = run_with_receipts(harness, webhooks, campaign, 4)

    assert counters["succeeded"] == 4 and receipts(counters) == (4, 3, 0)  # Messenger's are read, the SMS not
    sent = {m["to"]: m for m in provider.messages()}
    assert len(sent) == 4
    for i in range(3):
        message = sent[psid(i)]
        assert (message["channel"], message["from"], message["text"]) == (
            "messenger",
            PAGE,
            f"Hi Ana{i}, your order shipped.",
        )
        assert message["options"] == {"category": "message_tag", "tag": "ACCOUNT_UPDATE"}
    sms = sent[valid_phone(100)[1:]]
    assert (sms["channel"], sms["from"], sms["text"]) == ("sms", "Acme", "Hi Bo0, your order shipped.")
    outcomes = {o["recipient_id"]: o for o in harness.outcomes(campaign["id"])}
    assert {outcomes[f"m{i}"]["destination"] for i in range(3)} == {psid(i) for i in range(3)}
    assert outcomes["m0"]["receipt"] == "read" and outcomes["p0"]["receipt"] == "delivered"
    assert [a["channel"] for a in outcomes["p0"]["history"]] == ["sms"]


def test_a_segment_sends_messenger_to_those_with_an_id_and_untagged_messages_outside_the_window_fail(
    harness: Harness, provider: FakeProvider
) -> None:
    fb = {
        "name": "fb",
        "conditions": [{"field": "destinations.messenger", "op": "exists"}],
        "channel": "messenger",
        "sender": PAGE,  # no `messenger`: `update`, which reaches only those who wrote in the last 24 hours
    }
    campaign = harness.campaign(messenger_rows(2, without=2), segments=[fb], retry_policy=None)

    final = harness.run(campaign["id"])
    counters = harness.settle(final, 4)

    assert (counters["succeeded"], counters["failed"]) == (2, 2)
    by_segment = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")["segment_counters"]
    assert by_segment["fb"]["failed"] == 2
    outcomes = {o["recipient_id"]: o for o in harness.outcomes(campaign["id"])}
    for rid in ("m0", "m1"):
        last = outcomes[rid]["history"][-1]
        assert outcomes[rid]["state"] == "failed" and last["reason"] == "no_session", outcomes[rid]
        assert outcomes[rid]["last_error"].startswith("no_session: Messenger refused"), outcomes[rid]
    assert {outcomes[rid]["state"] for rid in ("p0", "p1")} == {"succeeded"}
    stats = provider.stats()
    assert stats["outside_window"] == 2 and stats["accepted"] == 2
    assert Counter(m["channel"] for m in provider.messages()) == {"sms": 2}


def test_bad_mms_viber_and_messenger_input_is_refused_on_its_field_and_nothing_is_created(harness: Harness) -> None:
    tenant = harness.tenant
    listed = tenant.ok("POST", "/v1/lists", {"name": "x"}, status=201)
    refused = partial(refused_campaign, tenant, listed["id"])
    mms = {"channel": "mms", "sender": "+14155550100"}

    assert "https" in refused("mms.image_url", **mms, mms={"image_url": "http://cdn.acme.example/a.png"})
    assert "public address" in refused("mms.image_url", **mms, mms={"image_url": "https://10.0.0.7/a.png"})
    assert "public host" in refused("mms.image_url", **mms, mms={"image_url": "https://localhost/a.png"})
    assert "image" in refused("mms", **mms, template=None)
    assert "sender ids" in refused("sender", channel="mms", sender="Acme", mms={"image_url": IMAGE})
    refused("variants.0.mms", variants=[{"name": "a", "weight": 100, "mms": {"image_url": IMAGE}}])
    assert "page id" in refused("sender", channel="messenger", sender="Acme Page")
    refused("messenger", channel="messenger", sender=PAGE, messenger={"category": "message_tag"})
    refused("messenger.tag", channel="messenger", sender=PAGE, messenger={"category": "message_tag", "tag": "SALE"})
    assert "promotional" in refused(
        "messenger.category",
        channel="messenger",
        sender=PAGE,
        category="marketing",
        messenger={"category": "message_tag", "tag": "ACCOUNT_UPDATE"},
    )
    refused("viber.ttl", channel="viber_service", sender="Acme", viber={"ttl": 5})
    assert "only for a Viber campaign" in refused("viber", viber={"ttl": 60})
    refused(
        "segments.0.mms",
        segments=[
            {"name": "s", "conditions": [{"field": "id", "op": "exists"}], "channel": "mms", "sender": "+14155550100"}
        ],
    )
    assert "page id" in refused("fallback.sender", fallback={"channel": "messenger", "sender": "+14155550100"})
    assert tenant.ok("GET", "/v1/campaigns")["items"] == []

    # A Messenger destination is a page-scoped id: a phone number (with '+') or a name is not one.
    added = tenant.ok(
        "POST",
        f"/v1/lists/{listed['id']}/recipients",
        {
            "recipients": [
                {"id": "a", "destinations": [{"type": "messenger", "address": "+14155550100"}]},
                {"id": "b", "destinations": [{"type": "messenger", "address": "ana.souza"}]},
                {"id": "c", "destinations": [{"type": "messenger", "address": psid(1)}]},
            ]
        },
    )
    assert [(r["index"], r["reason"], r["field"]) for r in added["rejected"]] == [
        (0, "invalid_address", "destinations[0].address"),
        (1, "invalid_address", "destinations[0].address"),
    ]
    assert added["accepted"] == 1


def test_an_mms_is_held_by_an_sms_opt_out_and_messenger_by_its_own_scope(
    harness: Harness, provider: FakeProvider
) -> None:
    tenant = harness.tenant
    # The number opted out of texts: its MMS is skipped too. The PSID opted out of Messenger only.
    tenant.ok("POST", "/v1/suppressions", {"destination": valid_phone(0), "channel": "sms"}, status=201)
    added = tenant.ok("POST", "/v1/suppressions", {"destination": psid(1), "channel": "messenger"}, status=201)
    assert added == {"destination": psid(1), "scopes": ["messenger"]}
    assert (
        tenant.call("POST", "/v1/suppressions", {"destination": "ana.souza", "channel": "messenger"}).status_code == 422
    )
    tagged = {"category": "message_tag", "tag": "ACCOUNT_UPDATE"}
    definitions: list[tuple[Any, dict[str, Any]]] = [
        (2, {"channel": "mms", "sender": "+14155550100", "mms": {"image_url": IMAGE}}),
        (messenger_rows(2), {"channel": "messenger", "sender": PAGE, "messenger": tagged}),
    ]
    sent: list[str] = []
    campaigns = []
    for recipients, definition in definitions:  # one after the other: each settled on its own sends
        campaign = harness.campaign(recipients, retry_policy=None, **definition)
        counters = harness.settle(harness.run(campaign["id"]), 2)
        assert (counters["succeeded"], counters["skipped_by_reason"]) == (1, {"opted_out": 1}), counters
        sent += [m["to"] for m in provider.messages()]
        provider.reset()
        campaigns.append(campaign)
    mms, messenger = campaigns
    skipped = {
        o["recipient_id"]
        for c in (mms, messenger)
        for o in harness.outcomes(c["id"])
        if o["skip_reason"] == "opted_out"
    }
    assert skipped == {valid_phone(0), "m1"}
    assert sorted(sent) == sorted([valid_phone(1)[1:], psid(0)])


def test_help_and_stop_sent_by_mms_are_answered_by_sms_and_end_sms_and_mms(
    harness: Harness, webhooks: EventBridge, provider: FakeProvider
) -> None:
    harness.tenant.ok("POST", "/v1/numbers", {"number": NUMBER, "help_text": HELP_TEXT}, status=201)
    provider.inbound(valid_phone(0), NUMBER, "help", channel="mms")
    provider.inbound(valid_phone(1), NUMBER, "STOP", channel="mms")
    webhooks.deliver(harness.tenant)

    assert webhooks.results[("inbound", "helped")] == 1 and webhooks.results[("inbound", "opted_out")] == 1
    answered = [(m["channel"], m["to"], m["from"], m["text"]) for m in provider.messages()]
    assert answered == [("sms", valid_phone(0)[1:], NUMBER[1:], HELP_TEXT)]
    listed = harness.tenant.ok("GET", f"/v1/suppressions?destination={valid_phone(1).replace('+', '%2B')}")["items"]
    assert [(s["scope"], s["source"]) for s in listed] == [("sms", "inbound")]


def test_replies_and_stops_by_messenger_and_viber_reach_the_account_whose_page_and_service_sent(
    harness: Harness, webhooks: EventBridge, provider: FakeProvider
) -> None:
    """The page id and the Viber service id registered (POST /v1/numbers with their channel): a reply to the
    page is linked to the campaign that wrote from it, a STOP to it suppresses the person's page-scoped id on
    Messenger (the next campaign skips them), and HELP to the Viber service is answered from it by Viber."""
    api = harness.tenant
    viber_service = "AcmeViberService"
    api.ok("POST", "/v1/numbers", {"number": PAGE, "channel": "messenger", "help_text": HELP_TEXT}, status=201)
    api.ok(
        "POST", "/v1/numbers", {"number": viber_service, "channel": "viber_service", "help_text": HELP_TEXT}, status=201
    )
    harness.with_events = True
    tagged = {"category": "message_tag", "tag": "ACCOUNT_UPDATE"}
    first = harness.campaign(messenger_rows(2), channel="messenger", sender=PAGE, messenger=tagged, retry_policy=None)
    run_with_receipts(harness, webhooks, first, 2)

    provider.inbound(psid(0), PAGE, "Thanks!", channel="messenger")
    provider.inbound(psid(1), PAGE, "STOP", channel="messenger")
    provider.inbound(valid_phone(5), viber_service, "help", channel="viber_service")
    webhooks.deliver(api)
    harness.stream()

    assert webhooks.results[("inbound", "opted_out")] == 1 and webhooks.results[("inbound", "helped")] == 1
    assert webhooks.results[("inbound", "noted")] == 1
    assert api.ok("GET", f"/v1/campaigns/{first['id']}")["counters"]["replied"] == 2  # the STOP answers it too
    listed = api.ok("GET", "/v1/suppressions?channel=messenger")["items"]
    assert [(s["destination"], s["scope"], s["source"]) for s in listed] == [(psid(1), "messenger", "inbound")]
    answered = [(m["channel"], m["to"], m["from"], m["text"]) for m in provider.messages()[2:]]
    assert answered == [("viber_service", valid_phone(5)[1:], viber_service, HELP_TEXT)]

    second = harness.campaign(messenger_rows(2), channel="messenger", sender=PAGE, messenger=tagged, retry_policy=None)
    assert harness.run(second["id"])["status"] == "completed"  # not `settle`: psid(0) gets its second message
    harness.stream()
    counters = api.ok("GET", f"/v1/campaigns/{second['id']}")["counters"]
    assert (counters["succeeded"], counters["skipped"]) == (1, 1)
    outcomes = {o["recipient_id"]: o for o in harness.outcomes(second["id"])}
    assert (outcomes["m1"]["state"], outcomes["m1"]["skip_reason"]) == ("skipped", "opted_out")
    assert [m["to"] for m in provider.messages()[3:]] == [psid(0)]
