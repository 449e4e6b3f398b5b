"""Every-match segments (decision 49): a recipient matching k segments gets k messages, one on each segment's
channel with its sender and content, each its own delivery, counted per segment; a recipient matching none is
skipped (`no_segment`) or gets the campaign's own. Counted at the fake provider per recipient and channel."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from infra.local.fake_provider import FakeProvider
from tests.faults.harness import FINAL, Harness
from tests.faults.test_erasure import run_jobs
from tests.faults.webhooks import HELP_TEXT, NUMBER, EventBridge
from tests.integration.test_exports import downloaded, run_exports
from tests.utils import campaign_body

WHATSAPP = {"template_name": "points_expiring", "locale": "en_US", "parameters": ["{{ first_name }}"]}
SEGMENTS = [
    {
        "name": "members",
        "conditions": [{"field": "attributes.tier", "op": "in", "value": ["gold", "silver"]}],
        "channel": "whatsapp",
        "sender": "+14155550100",
        "whatsapp": WHATSAPP,
    },
    {
        "name": "buyers",
        "conditions": [{"field": "attributes.orders", "op": "gte", "value": 5}],
        "channel": "viber_service",
        "sender": "AcmeViberService",
        "template": "Viber {{ first_name }}: {{ orders }} orders",
    },
    {
        "name": "vip",
        "conditions": [{"field": "attributes.vip", "op": "eq", "value": True}],
        "template": "VIP {{ first_name }}",
        "sender": "AcmeVIP",
    },
]
# Recipient -> the segments it matches (its number ends in its index).
MATCHES = {
    "zero": [],
    "one": ["vip"],
    "two": ["members", "buyers"],
    "three": ["members", "buyers", "vip"],
}
CHANNEL = {"members": "whatsapp", "buyers": "viber_service", "vip": "sms"}


def number(i: int) -> str:
    return f"1415555{i:04d}"


def rows() -> list[dict[str, Any]]:
    attributes: list[dict[str, Any]] = [
        {"tier": "bronze", "orders": 1},
        {"vip": True, "orders": 2},
        {"tier": "gold", "orders": 7},
        {"tier": "silver", "orders": 9, "vip": True},
    ]
    return [
        {
            "id": rid,
            "destinations": [{"type": "phone", "address": f"+{number(i)}"}],
            "attributes": {"first_name": rid, **attributes[i]},
        }
        for i, rid in enumerate(MATCHES)
    ]


def start(harness: Harness, **overrides: Any) -> dict[str, Any]:
    tenant = harness.tenant
    listed = tenant.ok("POST", "/v1/lists", {"name": "every"}, status=201)
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows()})
    body = campaign_body(listed["id"], segments=SEGMENTS, segment_policy="every", rate_per_second=200, **overrides)
    created = tenant.ok("POST", "/v1/campaigns", body, status=201)
    assert created["segment_policy"] == "every"
    return dict(tenant.ok("POST", f"/v1/campaigns/{created['id']}/start"))


def sent_per_recipient_and_channel(harness: Harness) -> Counter[tuple[str, str]]:
    by_number = {number(i): rid for i, rid in enumerate(MATCHES)}
    return Counter((by_number[m["to"]], m["channel"]) for m in harness.provider.messages())


def test_each_recipient_gets_one_message_per_matching_segment_on_its_channel(harness: Harness) -> None:
    campaign = start(harness, no_segment="skip")
    assert campaign["recipients"] == 4

    final = harness.run(campaign["id"])

    assert final["status"] == "completed", final
    expected = Counter((rid, CHANNEL[name]) for rid, names in MATCHES.items() for name in names)
    assert sent_per_recipient_and_channel(harness) == expected  # each message once, none for "zero"
    assert harness.provider.stats()["duplicates"] == 0
    texts = {(m["to"], m["channel"]): (m["from"], m.get("text")) for m in harness.provider.messages()}
    assert texts[(number(3), "sms")] == ("AcmeVIP", "VIP three")
    assert texts[(number(3), "viber_service")] == ("AcmeViberService", "Viber three: 9 orders")
    whatsapp = [m for m in harness.provider.messages() if m["channel"] == "whatsapp"]
    assert {m["from"] for m in whatsapp} == {"14155550100"}
    assert sorted(json.loads(m["text"])[2][0] for m in whatsapp) == ["three", "two"]  # the template's parameter

    counters = final["counters"]
    assert counters["total"] == 7  # messages: 0 + 1 + 2 + 3 sent, and the skip of "zero"
    assert (counters["succeeded"], counters["skipped"], counters["queued"]) == (6, 1, 0)
    assert counters["skipped_by_reason"] == {"no_segment": 1}
    by_segment = {name: c["succeeded"] for name, c in final["segment_counters"].items()}
    assert by_segment == {"members": 2, "buyers": 2, "vip": 2}

    outcomes = harness.outcomes(campaign["id"])
    assert sorted((o["recipient_id"], o["segment"], o["state"]) for o in outcomes) == sorted(
        [("zero", None, "skipped")] + [(rid, name, "succeeded") for rid, names in MATCHES.items() for name in names]
    )
    assert {o["state"] for o in outcomes} <= FINAL
    recount = harness.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/recount")
    assert recount["drift"] == {} and recount["after"] == counters, recount

    one = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/recipients/three")
    assert [(m["segment"], m["state"], m["history"][-1]["channel"]) for m in one["messages"]] == [
        ("members", "succeeded", "whatsapp"),
        ("buyers", "succeeded", "viber_service"),
        ("vip", "succeeded", "sms"),
    ]
    assert (one["recipient_id"], one["segment"]) == ("three", "members")  # the first message's fields on top
    none = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/recipients/zero")
    assert [(m["segment"], m["skip_reason"]) for m in none["messages"]] == [(None, "no_segment")]

    # The outcomes export: a row per message, with the recipient's id and the message's segment.
    created = harness.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/exports", status=202)
    assert run_exports(harness.app, harness.env) == 1
    export = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/exports/{created['id']}")
    header, *lines = downloaded(harness.tenant, export)
    assert (header[0], header[-1]) == ("recipient_id", "segment")
    assert sorted((line[0], line[-1], line[3]) for line in lines) == sorted(
        [("zero", "", "skipped")] + [(rid, name, "succeeded") for rid, names in MATCHES.items() for name in names]
    )


def test_a_retried_message_is_sent_again_alone_and_the_others_once(harness: Harness) -> None:
    # The first send to "three"'s number (whichever of its messages goes first) fails for a transient reason.
    harness.provider.configure(scripted_by_number={number(3): [503]})
    harness.with_events = True
    campaign = start(harness)  # no_segment: send, "zero" gets the campaign's own SMS

    final = harness.run(campaign["id"])

    assert final["status"] == "completed", final
    expected = Counter((rid, CHANNEL[name]) for rid, names in MATCHES.items() for name in names)
    expected[("zero", "sms")] += 1
    assert sent_per_recipient_and_channel(harness) == expected
    assert harness.provider.stats()["duplicates"] == 0
    counters = final["counters"]
    assert (counters["total"], counters["succeeded"], counters["failed"], counters["skipped"]) == (7, 7, 0, 0)
    assert {name: c["succeeded"] for name, c in final["segment_counters"].items()} == {
        "members": 2,
        "buyers": 2,
        "vip": 2,
    }
    messages = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/recipients/three")["messages"]
    tries = sorted([h["outcome"] for h in m["history"]] for m in messages)
    assert tries == [["retry", "succeeded"], ["succeeded"], ["succeeded"]], messages
    recount = harness.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/recount")
    assert recount["drift"] == {} and recount["after"] == counters, recount
    # The event log names the recipient and the message's segment, not the delivery's key.
    logged = harness.tenant.ok("GET", f"/v1/events?campaign_id={campaign['id']}&type=delivery.succeeded&limit=100")
    assert sorted((e["recipient_id"], e["data"].get("segment")) for e in logged["items"]) == sorted(
        [("zero", None)] + [(rid, name) for rid, names in MATCHES.items() for name in names]
    )


def test_every_match_without_segments_is_refused_naming_the_field(harness: Harness) -> None:
    listed = harness.tenant.ok("POST", "/v1/lists", {"name": "x"}, status=201)
    answer = harness.tenant.call("POST", "/v1/campaigns", campaign_body(listed["id"], segment_policy="every"))
    assert answer.status_code == 422
    assert answer.json_body["errors"][0]["field"] == "segment_policy", answer.json_body
    assert harness.tenant.ok("GET", "/v1/campaigns")["items"] == []

    created = harness.tenant.ok(
        "POST", "/v1/campaigns", campaign_body(listed["id"], segments=SEGMENTS, segment_policy="every"), status=201
    )
    answer = harness.tenant.call("PATCH", f"/v1/campaigns/{created['id']}", {"segments": []})
    assert answer.status_code == 422
    assert answer.json_body["errors"][0]["field"] == "segments", answer.json_body
    assert len(harness.tenant.ok("GET", f"/v1/campaigns/{created['id']}")["segments"]) == 3


def test_messages_parked_by_a_pause_come_back_as_themselves_and_each_is_sent_once(harness: Harness) -> None:
    shapes = rows()
    many = [
        {**shapes[i % 4], "id": f"r{i}", "destinations": [{"type": "phone", "address": f"+{number(i)}"}]}
        for i in range(40)
    ]
    listed = harness.tenant.ok("POST", "/v1/lists", {"name": "every"}, status=201)
    harness.tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": many})
    body = campaign_body(listed["id"], segments=SEGMENTS, segment_policy="every", rate_per_second=20)
    created = harness.tenant.ok("POST", "/v1/campaigns", body, status=201)
    harness.tenant.ok("POST", f"/v1/campaigns/{created['id']}/start")
    harness.release()  # chunks of messages queued for dispatch
    harness.tenant.ok("POST", f"/v1/campaigns/{created['id']}/pause")
    harness.run(created["id"], rounds=3)  # what was released is parked, each message as itself
    paused = harness.tenant.ok("GET", f"/v1/campaigns/{created['id']}")
    assert harness.provider.messages() == [] and paused["counters"]["in_flight"] == 0
    # While it runs, the listing walks the audience: a row per message released (parked), one per recipient not.
    rows_of: dict[str, list[dict[str, Any]]] = {}
    for row in harness.outcomes(created["id"]):
        rows_of.setdefault(row["recipient_id"], []).append(row)
    assert sorted(rows_of) == sorted(f"r{i}" for i in range(40))
    parked = 0
    for rid, listed_rows in rows_of.items():
        names = MATCHES[list(MATCHES)[int(rid[1:]) % 4]]
        states = {row["state"] for row in listed_rows}
        if states == {"pending"}:
            assert len(listed_rows) == 1
            continue
        assert states == {"queued"} and sorted(row["segment"] or "" for row in listed_rows) == sorted(names or [""])
        parked += len(listed_rows)
    assert parked > 0 and paused["counters"]["skipped"] == 0
    harness.tenant.ok("POST", f"/v1/campaigns/{created['id']}/resume")

    final = harness.run(created["id"])

    assert final["status"] == "completed", final
    per_message = Counter((m["to"], m["channel"]) for m in harness.provider.messages())
    expected = Counter(
        (number(i), CHANNEL[name]) for i in range(40) for name in MATCHES[list(MATCHES)[i % 4]] or ["vip"]
    )  # "zero" (no segment) gets the campaign's own SMS
    assert per_message == expected and set(per_message.values()) == {1}
    counters = final["counters"]
    assert (counters["total"], counters["succeeded"], counters["queued"]) == (70, 70, 0)
    by_segment = {name: (c["succeeded"], c["waiting"]) for name, c in final["segment_counters"].items()}
    assert by_segment == {"members": (20, 0), "buyers": (20, 0), "vip": (20, 0)}
    recount = harness.tenant.ok("POST", f"/v1/campaigns/{created['id']}/recount")
    assert recount["drift"] == {} and recount["after"] == counters, recount


def test_a_frequency_cap_counts_each_message(harness: Harness) -> None:
    campaign = start(harness, no_segment="skip", frequency_cap={"max_messages": 2, "period_days": 1})

    final = harness.run(campaign["id"])

    assert final["status"] == "completed", final
    sent = Counter(rid for rid, _ in sent_per_recipient_and_channel(harness).elements())
    assert sent == {"one": 1, "two": 2, "three": 2}  # the third message to "three" is over its cap
    counters = final["counters"]
    assert counters["skipped_by_reason"] == {"no_segment": 1, "capped": 1}
    assert (counters["total"], counters["succeeded"]) == (7, 5)
    three = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/recipients/three")["messages"]
    assert sorted(m["state"] for m in three) == ["skipped", "succeeded", "succeeded"]


def test_a_reply_to_each_segments_number_is_noted_on_that_message(
    harness: Harness, webhooks: EventBridge, provider: FakeProvider
) -> None:
    other = "+14155550111"  # the second segment's own number
    for registered in (NUMBER, other):
        harness.tenant.ok("POST", "/v1/numbers", {"number": registered, "help_text": HELP_TEXT}, status=201)
    harness.with_events = True
    both = [
        {"name": "news", "conditions": [{"field": "attributes.first_name", "op": "exists"}], "template": "News"},
        {
            "name": "offers",
            "conditions": [{"field": "attributes.first_name", "op": "exists"}],
            "template": "Offer",
            "sender": other,
        },
    ]
    sale = harness.campaign(3, sender=NUMBER, retry_policy=None, segments=both, segment_policy="every")
    assert harness.run(sale["id"])["status"] == "completed"
    sent = provider.messages()
    assert Counter(m["from"] for m in sent) == {NUMBER[1:]: 3, other[1:]: 3}
    for message in sent:  # each recipient answers each number that wrote to them
        provider.inbound("+" + message["to"], "+" + message["from"], "thanks")
    webhooks.deliver(harness.tenant)
    harness.stream()
    current = harness.tenant.ok("GET", f"/v1/campaigns/{sale['id']}")
    assert current["counters"]["replied"] == 6
    assert {name: own["replied"] for name, own in current["segment_counters"].items()} == {"news": 3, "offers": 3}


def test_an_erasure_takes_each_message_and_keeps_it_counted_under_one_erased_id(harness: Harness) -> None:
    campaign = start(harness, no_segment="skip")
    final = harness.run(campaign["id"])
    assert final["status"] == "completed", final

    asked = harness.tenant.ok("DELETE", "/v1/recipients?recipient_id=three&suppress=false", status=202)
    run_jobs(harness, harness.env["ERASURE_QUEUE_URL"], "erasure")

    done = harness.tenant.ok("GET", f"/v1/erasures/{asked['id']}")
    assert done["status"] == "completed" and done["counts"]["deliveries"] == 3, done
    rows = harness.outcomes(campaign["id"])
    assert "three" not in {row["recipient_id"] for row in rows}
    erased = [row for row in rows if row["recipient_id"] not in MATCHES]
    assert len({row["recipient_id"] for row in erased}) == 1  # one erased id for the person's three messages
    assert sorted(row["segment"] for row in erased) == ["buyers", "members", "vip"]
    recount = harness.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/recount")
    assert recount["drift"] == {}, recount
