"""Suppressions and numbers through the API (decision 40): bad input is a 422 naming the field, another
account's are invisible, a number belongs to one account, and an inbound message to a number nobody
registered, or a malformed one, changes nothing."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from infra.local.fake_voice import sign
from tests.utils import Api

pytestmark = pytest.mark.integration

SECRET = "a-signature-secret-of-the-account-0001"


def problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.body
    assert answer.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = json.loads(answer.body)
    return body


def test_suppressions_are_added_listed_by_channel_and_lifted(tenant: Api, api: Api) -> None:
    added = tenant.ok("POST", "/v1/suppressions", {"destination": "+1 (415) 555-0123", "channel": "all"}, status=201)
    assert added["destination"] == "+14155550123" and "whatsapp.utility" in added["scopes"]
    tenant.ok("POST", "/v1/suppressions", {"destination": "Ann@Example.COM", "channel": "email"}, status=201)
    emails = tenant.ok("GET", "/v1/suppressions?channel=email")["items"]
    # Listed in key order: the keyed hash of each destination (decision 42), not the destination's order.
    assert sorted((s["destination"], s["scope"], s["source"]) for s in emails) == [
        ("+14155550123", "email", "api"),
        ("Ann@example.com", "email", "api"),
    ]
    one = tenant.ok("GET", "/v1/suppressions?destination=%2B14155550123")["items"]
    assert len(one) == 7
    lifted = tenant.ok("DELETE", "/v1/suppressions?destination=%2B14155550123&channel=whatsapp")
    assert lifted["scopes"] == ["whatsapp.marketing", "whatsapp.utility"]
    assert len(tenant.ok("GET", "/v1/suppressions?destination=%2B14155550123")["items"]) == 5
    missing = tenant.call("DELETE", "/v1/suppressions?destination=%2B14155550123&channel=whatsapp")
    assert "not suppressed" in problem(missing, 404)["detail"]
    # Another account sees none of them, and lifting one of them changes nothing of this account's.
    other = api.new_account("other")
    assert other.ok("GET", "/v1/suppressions")["items"] == []
    problem(other.call("DELETE", "/v1/suppressions?destination=%2B14155550123&channel=sms"), 404)
    assert len(tenant.ok("GET", "/v1/suppressions?channel=sms")["items"]) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"destination": "not a number", "channel": "sms"}, "destination"),
        ({"destination": "ann@example.com", "channel": "sms"}, "destination"),
        ({"destination": "+14155550123", "channel": "email"}, "destination"),
        ({"destination": "+14155550123", "channel": "pigeon"}, "channel"),
        ({"destination": "+14155550123"}, "channel"),
    ],
)
def test_a_bad_suppression_is_a_422_naming_the_field(tenant: Api, body: dict[str, Any], field: str) -> None:
    found = problem(tenant.call("POST", "/v1/suppressions", body), 422)
    assert [e["field"] for e in found["errors"]] == [field]
    assert tenant.ok("GET", "/v1/suppressions")["items"] == []


def test_a_number_belongs_to_one_account(tenant: Api, api: Api) -> None:
    mine = tenant.ok("POST", "/v1/numbers", {"number": "+14155550100", "help_text": "Acme. STOP to end."}, status=201)
    assert mine["number"] == "+14155550100"
    other = api.new_account("other")
    taken = problem(other.call("POST", "/v1/numbers", {"number": "+14155550100", "help_text": "Mine!"}), 409)
    assert "another account" in taken["detail"]
    assert other.ok("GET", "/v1/numbers")["items"] == []
    bad = problem(tenant.call("POST", "/v1/numbers", {"number": "+1555", "help_text": "x"}), 422)
    assert [e["field"] for e in bad["errors"]] == ["number"]
    problem(other.call("DELETE", "/v1/numbers?number=%2B14155550100"), 404)
    assert [n["number"] for n in tenant.ok("GET", "/v1/numbers")["items"]] == ["+14155550100"]
    assert tenant.call("DELETE", "/v1/numbers?number=%2B14155550100").status_code == 204
    # Given up, it can be taken by the other account.
    other.ok("POST", "/v1/numbers", {"number": "+14155550100", "help_text": "Mine now."}, status=201)


def test_an_inbound_message_unsigned_malformed_or_to_nobodys_number_changes_nothing(
    tenant: Api, monkeypatch: pytest.MonkeyPatch, aws_env: dict[str, str]
) -> None:
    boto3.client("secretsmanager", region_name="us-east-1").create_secret(Name="sig", SecretString=SECRET)
    monkeypatch.setenv("VONAGE_SIGNATURE_SECRET", "sig")
    from chalicelib.settings import get_settings

    get_settings.cache_clear()
    tenant.ok("POST", "/v1/numbers", {"number": "+14155550100", "help_text": "Acme."}, status=201)

    def post(message: Any, signed: bool = True) -> Any:
        body = json.dumps(message).encode()
        headers = {"Content-Type": "application/json"}
        if signed:
            headers["Authorization"] = f"Bearer {sign(body, SECRET)}"
        return tenant.client.http.request("POST", "/v1/webhooks/vonage/inbound", headers=headers, body=body)

    stop = {"channel": "sms", "message_uuid": "m-1", "to": "14155550100", "from": "14155550123", "text": "STOP"}
    problem(post(stop, signed=False), 401)
    problem(post({**stop, "to": "14155550199"}), 404)
    assert [e["field"] for e in problem(post({**stop, "from": "Robert'); DROP"}), 422)["errors"]] == ["from"]
    assert [e["field"] for e in problem(post({**stop, "channel": "fax"}), 422)["errors"]] == ["channel"]
    problem(post({**stop, "text": "x" * 6000}), 422)
    assert tenant.ok("GET", "/v1/suppressions")["items"] == []
    assert json.loads(post(stop).body) == {"result": "opted_out"}
    assert [s["destination"] for s in tenant.ok("GET", "/v1/suppressions")["items"]] == ["+14155550123"]


def test_a_whatsapp_message_opens_its_senders_window_and_a_late_repeat_never_moves_it_back(
    tenant: Api, monkeypatch: pytest.MonkeyPatch, aws_env: dict[str, str]
) -> None:
    """Decision 46: the time of the person's last WhatsApp message to the number, per (account, number,
    person), from the message's own timestamp (never later than its arrival); SMS opens nothing."""
    boto3.client("secretsmanager", region_name="us-east-1").create_secret(Name="sig", SecretString=SECRET)
    monkeypatch.setenv("VONAGE_SIGNATURE_SECRET", "sig")
    from chalicelib.settings import get_settings
    from chalicelib.store import numbers, sessions

    get_settings.cache_clear()
    tenant.ok("POST", "/v1/numbers", {"number": "+14155550100", "help_text": "Acme."}, status=201)
    owner = numbers.owner("+14155550100")
    assert owner is not None
    account = str(owner["account"])

    def post(message: dict[str, Any]) -> Any:
        body = json.dumps(message).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {sign(body, SECRET)}"}
        answer = tenant.client.http.request("POST", "/v1/webhooks/vonage/inbound", headers=headers, body=body)
        assert answer.status_code == 200, answer.body
        return answer

    def last(person: str) -> dict[tuple[str, str], float]:
        return sessions.read(account, [], [("+14155550100", person)])[1]

    hello = {"channel": "whatsapp", "to": "14155550100", "from": "14155550123", "text": "Hello"}
    post({**hello, "message_uuid": "w-1", "timestamp": "2026-11-26T10:00:00.000Z"})
    post({**hello, "message_uuid": "w-0", "timestamp": "2026-11-26T09:00:00.000Z"})  # an older one, late
    post({**hello, "message_uuid": "w-1", "timestamp": "2026-11-26T10:00:00.000Z"})  # posted again
    assert last("+14155550123") == {("+14155550100", "+14155550123"): 1_795_687_200.0}  # 10:00 UTC
    post({**hello, "message_uuid": "w-2", "timestamp": "2999-01-01T00:00:00.000Z"})  # a clock far ahead
    assert last("+14155550123")[("+14155550100", "+14155550123")] <= time.time()
    post({**hello, "channel": "sms", "from": "14155550124", "message_uuid": "s-1"})  # SMS: no WhatsApp window
    assert last("+14155550124") == {}


def test_a_stop_by_viber_or_messenger_to_a_registered_id_suppresses_its_sender_there(
    tenant: Api, api: Api, monkeypatch: pytest.MonkeyPatch, aws_env: dict[str, str]
) -> None:
    """A Viber service id and a Facebook page id are registered like numbers (with their channel), so what
    people send to them reaches the account: STOP on Messenger suppresses the person's page-scoped id for
    `messenger`, STOP on Viber their number for `viber`. Before, both were refused (422: not a number)."""
    boto3.client("secretsmanager", region_name="us-east-1").create_secret(Name="sig", SecretString=SECRET)
    monkeypatch.setenv("VONAGE_SIGNATURE_SECRET", "sig")
    from chalicelib.settings import get_settings

    get_settings.cache_clear()

    def post(message: Any) -> Any:
        body = json.dumps(message).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {sign(body, SECRET)}"}
        return tenant.client.http.request("POST", "/v1/webhooks/vonage/inbound", headers=headers, body=body)

    page = {"channel": "messenger", "message_uuid": "f-1", "to": "104523198765432", "from": "7654321098765432"}
    viber = {"channel": "viber_service", "message_uuid": "v-1", "to": "14155550177", "from": "447700900001"}
    problem(post({**page, "text": "STOP"}), 404)  # nobody registered the page yet
    bad = [
        {"number": "+14155550100", "channel": "messenger"},
        {"number": "Acme Ltd", "channel": "viber_service"},
        {"number": "A" * 51, "channel": "viber_service"},
        {"number": "16273", "channel": "fax"},
    ]
    for body in bad:
        errors = problem(tenant.call("POST", "/v1/numbers", {**body, "help_text": "Acme."}), 422)["errors"]
        assert [e["field"] for e in errors] == ["channel" if body["channel"] == "fax" else "number"], body
    registered = tenant.ok(
        "POST", "/v1/numbers", {"number": "104523198765432", "channel": "messenger", "help_text": "Acme."}, status=201
    )
    assert registered["channel"] == "messenger"
    viber_id = {"number": "14155550177", "channel": "viber_service", "help_text": "Acme."}
    tenant.ok("POST", "/v1/numbers", viber_id, status=201)
    other = api.new_account("other")
    # The same digits as a phone number are another registration: another account may hold it.
    other.ok("POST", "/v1/numbers", {"number": "+14155550177", "help_text": "A number, not the Viber id."}, status=201)
    listed = {(n["number"], n["channel"]) for n in tenant.ok("GET", "/v1/numbers")["items"]}
    assert listed == {("104523198765432", "messenger"), ("14155550177", "viber_service")}

    assert [e["field"] for e in problem(post({**page, "from": "+7654321098765432"}), 422)["errors"]] == ["from"]
    assert [e["field"] for e in problem(post({**viber, "from": "1234"}), 422)["errors"]] == ["from"]
    problem(post({**viber, "channel": "sms", "to": "16273"}), 422)  # an SMS goes to a number
    sms = {**viber, "channel": "sms", "message_uuid": "s-1", "from": "14155550123", "text": "STOP"}
    assert json.loads(post(sms).body) == {"result": "opted_out"}  # to the other account's number
    on_viber = {**page, "channel": "viber_service", "from": "447700900002"}
    problem(post(on_viber), 404)  # the page id is no Viber service id

    assert json.loads(post({**page, "text": "STOP"}).body) == {"result": "opted_out"}
    assert json.loads(post({**viber, "text": "Stop"}).body) == {"result": "opted_out"}
    found = {(s["destination"], s["scope"], s["source"]) for s in tenant.ok("GET", "/v1/suppressions")["items"]}
    assert found == {("7654321098765432", "messenger", "inbound"), ("+447700900001", "viber", "inbound")}
    assert [(s["destination"], s["scope"]) for s in other.ok("GET", "/v1/suppressions")["items"]] == [
        ("+14155550123", "sms")
    ]

    assert tenant.call("DELETE", "/v1/numbers?number=104523198765432&channel=messenger").status_code == 204
    problem(post({**page, "message_uuid": "f-2", "text": "START"}), 404)  # given up: no longer the account's
