"""Replies and reply handlers (decision 45), played for real: the fake provider posts each recipient's message
signed to the bridge in front of the real inbound route (tests/faults/webhooks.py), after a campaign sent from
the account's number.

- A reply is linked to the campaign and recipient it answers: its event is filed under them, the delivery
  counts it (`replied`, `recipient.replied`, `replies` over time), and a reply from a number the account
  never messaged is linked to nothing.
- Handlers react in order: a keyword set adds the sender to a list, sets an attribute on the campaign's
  recipient and starts an evergreen campaign for them (which sends to them); a regex forwards the message to
  one webhook (verified with the `standardwebhooks` reference verifier) and calls an HTTP action with the
  reply and the recipient's attributes; a keyword unsubscribes. STOP stays
  the carriers' word: no handler runs on it. The provider sending a message again changes nothing.
- Bad handlers (an invalid or catastrophic regex, a list, webhook or campaign that is not there) are a 422
  naming the field, and nothing is made."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from infra.local.fake_endpoint import FakeEndpoint
from infra.local.fake_provider import FakeProvider
from tests.faults.harness import Harness
from tests.faults.webhooks import HELP_TEXT, NUMBER, EventBridge
from tests.utils import valid_phone

PATH = "/hooks/orders"


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEndpoint]:
    for name, value in {"OUTBOUND_ALLOW_HTTP": "true", "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1"}.items():
        monkeypatch.setenv(name, value)
    from chalicelib.settings import get_settings

    get_settings.cache_clear()
    with FakeEndpoint() as made:
        made.script(status=204)
        yield made


def messages_to(provider: FakeProvider, number: str) -> list[str]:
    return [m["text"] for m in provider.messages() if m["to"] == number[1:]]


def test_replies_are_linked_to_their_campaign_and_handlers_react_once(
    harness: Harness, webhooks: EventBridge, provider: FakeProvider, endpoint: FakeEndpoint
) -> None:
    api = harness.tenant
    api.ok("POST", "/v1/numbers", {"number": NUMBER, "help_text": HELP_TEXT}, status=201)
    harness.with_events = True
    club = harness.campaign(
        [{"phone": valid_phone(90)}], sender=NUMBER, end_handle="continue", template="Welcome to the club"
    )
    interested = api.ok("POST", "/v1/lists", {"name": "interested"}, status=201)
    hook = api.ok(
        "POST",
        "/v1/webhooks",
        {"url": f"{endpoint.base_url}{PATH}", "event_types": ["webhook.disabled"]},
        status=201,
    )
    crm = api.ok(
        "POST",
        "/v1/actions",
        {
            "name": "crm",
            "url": f"{endpoint.base_url}/crm/replies",
            "body": '{"from": "{{ from }}", "name": "{{ first_name }}", "campaign": "{{ campaign_id }}"}',
        },
        status=201,
    )
    count = 8
    sale = harness.campaign(count, sender=NUMBER, retry_policy=None, template="Hi {{ first_name }}, 20% off")
    handlers = [
        {
            "name": "yes",
            "condition": {"type": "keywords", "keywords": ["interested", "OUI"]},
            "reactions": [
                {"type": "add_to_list", "list_id": interested["id"]},
                {"type": "set_attribute", "attribute": "interest", "value": "yes"},
                {"type": "start_campaign", "campaign_id": club["id"]},
            ],
        },
        {
            "name": "orders",
            "campaign_id": sale["id"],
            "condition": {"type": "regex", "pattern": r"\border\s*#?\d+"},
            "reactions": [
                {"type": "forward", "webhook_id": hook["webhook"]["id"]},
                {"type": "action", "action_id": crm["id"]},
            ],
        },
        {
            "name": "no more",
            "condition": {"type": "keywords", "keywords": ["no more"]},
            "reactions": [{"type": "unsubscribe"}],
        },
    ]
    made = [api.ok("POST", "/v1/reply-handlers", h, status=201) for h in handlers]
    assert harness.run(sale["id"])["status"] == "completed"

    replies = {
        valid_phone(0): "Interested!",
        valid_phone(1): "oui",
        valid_phone(2): "Where is my ORDER #1234?",
        valid_phone(3): "No more, thanks",  # not the keyword: the whole message must be it
        valid_phone(4): "no-more",
        valid_phone(5): "STOP",
        valid_phone(6): "thanks",
        valid_phone(70): "interested",  # never messaged by the account
    }
    uuids = {number: provider.inbound(number, NUMBER, text) for number, text in replies.items()}
    webhooks.deliver(api)
    assert set(webhooks.answered) == {200}, webhooks.answered
    harness.run(club["id"], rounds=20)  # the streams, the club's sends, the webhook deliveries

    # The club campaign sent to the two who said yes and were its sale's recipients, and the stranger.
    for number in (valid_phone(0), valid_phone(1), valid_phone(70)):
        assert messages_to(provider, number)[-1] == "Welcome to the club", number
    club_now = api.ok("GET", f"/v1/campaigns/{club['id']}")
    assert club_now["counters"]["succeeded"] == club_now["counters"]["total"] == 4
    listed = api.ok("GET", f"/v1/lists/{interested['id']}/recipients?limit=10")["items"]
    assert sorted(r["id"] for r in listed) == sorted([valid_phone(0), valid_phone(1), valid_phone(70)])
    sale_list = sale["list_id"]
    for number, wanted in ((valid_phone(0), "yes"), (valid_phone(1), "yes"), (valid_phone(2), None)):
        item = api.ok("GET", f"/v1/lists/{sale_list}/recipients/{number}")
        assert item["attributes"].get("interest") == wanted, item

    # The order question went to the webhook, signed, and nothing else did.
    requests = [r for r in endpoint.requests if r["path"] == PATH]
    assert len(requests) == 1, requests
    secret = hook["secret"]
    verified = Webhook(secret).verify(requests[0]["body"], {k.lower(): v for k, v in requests[0]["headers"].items()})
    assert verified["type"] == "message.received"
    assert verified["data"]["data"]["text"] == "Where is my ORDER #1234?"
    assert verified["data"]["campaign_id"] == sale["id"] and verified["data"]["recipient_id"] == valid_phone(2)

    # And the CRM got the action's request, rendered with the reply and the recipient's attributes.
    (called,) = [r for r in endpoint.requests if r["path"] == "/crm/replies"]
    assert json.loads(called["body"]) == {"from": valid_phone(2), "name": "R2", "campaign": sale["id"]}

    # Unsubscribed by the handler; STOP by the carriers' rule, with no handler run on it.
    suppressed = {s["destination"]: s["source"] for s in api.ok("GET", "/v1/suppressions?limit=10")["items"]}
    assert suppressed == {valid_phone(4): "handler", valid_phone(5): "inbound"}

    # Every reply but the stranger's is filed under the sale and its recipient, with what handled it.
    received = api.ok("GET", f"/v1/events?campaign_id={sale['id']}&type=message.received&limit=50")["items"]
    by_recipient = {e["recipient_id"]: e for e in received}
    assert sorted(by_recipient) == sorted(valid_phone(i) for i in range(7))
    ids = {h["name"]: m["id"] for h, m in zip(handlers, made, strict=True)}
    handled = {r: [h["handler_id"] for h in e["data"].get("handled_by", [])] for r, e in by_recipient.items()}
    assert handled == {
        valid_phone(0): [ids["yes"]],
        valid_phone(1): [ids["yes"]],
        valid_phone(2): [ids["orders"]],
        valid_phone(3): [],
        valid_phone(4): [ids["no more"]],
        valid_phone(5): [],
        valid_phone(6): [],
    }
    reactions = by_recipient[valid_phone(0)]["data"]["handled_by"][0]["reactions"]
    assert [r["result"] for r in reactions] == ["done", "done", "done"]
    stranger = api.ok("GET", "/v1/events?type=message.received&limit=50")["items"]
    (theirs,) = [e for e in stranger if e["data"]["from"] == valid_phone(70)]
    assert theirs["campaign_id"] is None
    assert [r["result"] for r in theirs["data"]["handled_by"][0]["reactions"]][1].startswith("not run")

    # Counted: each replier once, each reply over time, per recipient in the event log.
    counters = api.ok("GET", f"/v1/campaigns/{sale['id']}")["counters"]
    assert counters["replied"] == 7
    assert counters["succeeded"] == count
    replied = api.ok("GET", f"/v1/events?campaign_id={sale['id']}&type=recipient.replied&limit=50")["items"]
    assert sorted(e["recipient_id"] for e in replied) == sorted(valid_phone(i) for i in range(7))
    stats = api.ok("GET", f"/v1/campaigns/{sale['id']}/stats?granularity=day")
    assert sum(p["replies"] for p in stats["series"]) == 7
    assert {h["id"]: h["matched"] for h in api.ok("GET", "/v1/reply-handlers")["items"]} == {
        ids["yes"]: 3,
        ids["orders"]: 1,
        ids["no more"]: 1,
    }

    # The provider sending a message again (same message uuid, a fresh signature) changes nothing more.
    provider.resend_inbound(uuids[valid_phone(0)])
    webhooks.deliver(api)
    harness.run(club["id"], rounds=5)
    assert api.ok("GET", f"/v1/campaigns/{sale['id']}")["counters"]["replied"] == 7
    assert messages_to(provider, valid_phone(0)).count("Welcome to the club") == 1
    assert api.ok("GET", f"/v1/reply-handlers/{ids['yes']}")["matched"] == 3 + 1  # it ran again, idempotently
    assert len([r for r in endpoint.requests if r["path"] == PATH]) == 1
    drift = api.ok("POST", f"/v1/campaigns/{sale['id']}/recount")
    assert drift["drift"] == {}, drift


@pytest.mark.parametrize(
    ("handler", "field"),
    [
        ({"condition": {"type": "regex", "pattern": "(unclosed"}}, "condition.pattern"),
        ({"condition": {"type": "regex", "pattern": "(a+)+$"}}, "condition.pattern"),
        ({"condition": {"type": "regex", "pattern": "(x+x+)+y"}}, "condition.pattern"),
        ({"condition": {"type": "keywords"}}, "condition"),
        ({"condition": {"type": "keywords", "keywords": ["maybe", "Yes!"]}}, "condition.keywords"),
        ({"condition": {"type": "any"}, "reactions": []}, "reactions"),
        ({"reactions": [{"type": "add_to_list", "list_id": "lst_00000000000000000000"}]}, "reactions.0.list_id"),
        ({"reactions": [{"type": "forward", "webhook_id": "whk_00000000000000000000"}]}, "reactions.0.webhook_id"),
        ({"reactions": [{"type": "set_attribute", "attribute": "x"}]}, "reactions.0"),
        ({"reactions": [{"type": "unsubscribe", "channel": "pigeon"}]}, "reactions.0.channel"),
        ({"campaign_id": "cmp_00000000000000000000"}, "campaign_id"),
        ({"reactions": [{"type": "action", "action_id": "act_00000000000000000000"}]}, "reactions.0.action_id"),
    ],
)
def test_a_bad_handler_is_a_422_naming_the_field_and_nothing_is_made(
    harness: Harness, handler: dict[str, Any], field: str
) -> None:
    body = {"name": "h", "condition": {"type": "any"}, "reactions": [{"type": "unsubscribe"}], **handler}
    response = harness.tenant.call("POST", "/v1/reply-handlers", body)
    assert response.status_code == 422, response.body
    problem = json.loads(response.body)
    assert field in [e["field"] for e in problem["errors"]], problem
    assert harness.tenant.ok("GET", "/v1/reply-handlers")["items"] == []


def test_a_handler_may_not_start_a_campaign_that_would_not_send_to_them(harness: Harness) -> None:
    once = harness.campaign(1)  # end_handle stop: recipients added later are not sent
    body = {
        "name": "h",
        "condition": {"type": "any"},
        "reactions": [{"type": "start_campaign", "campaign_id": once["id"]}],
    }
    response = harness.tenant.call("POST", "/v1/reply-handlers", body)
    assert response.status_code == 422, response.body
    assert [e["field"] for e in json.loads(response.body)["errors"]] == ["reactions.0.campaign_id"]


def test_a_reply_to_the_number_an_ab_variant_sent_from_is_linked_and_counted_per_variant(
    harness: Harness, webhooks: EventBridge, provider: FakeProvider
) -> None:
    other = "+14155550111"  # variant b's own number
    for number in (NUMBER, other):
        harness.tenant.ok("POST", "/v1/numbers", {"number": number, "help_text": HELP_TEXT}, status=201)
    harness.with_events = True
    arms = [
        {"name": "a", "weight": 50, "template": "A: hi"},
        {"name": "b", "weight": 50, "template": "B: hi", "sender": other},
    ]
    sale = harness.campaign(8, sender=NUMBER, retry_policy=None, variants=arms)
    assert harness.run(sale["id"])["status"] == "completed"
    sent = provider.messages()
    assert {m["from"] for m in sent} == {NUMBER[1:], other[1:]}, "both numbers sent"
    for message in sent:  # each recipient answers the number that wrote to them
        provider.inbound("+" + message["to"], "+" + message["from"], "thanks")
    webhooks.deliver(harness.tenant)
    harness.stream()
    current = harness.tenant.ok("GET", f"/v1/campaigns/{sale['id']}")
    assert current["counters"]["replied"] == 8
    for name, own in current["variant_counters"].items():
        assert own["replied"] == own["succeeded"] > 0, (name, own)
