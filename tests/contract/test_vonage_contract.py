"""The Messages adapter and the fake provider held to Vonage's published Messages API 1.4.0 description
(infra/local/contracts, checked with jsonschema): every request the adapter sends, every answer and
status callback the fake gives, and the fake refusing what the description refuses."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from chalicelib.channels.base import MessagesOptions, OutgoingMessage, WhatsAppTemplate
from chalicelib.channels.vonage import VonageMessages, request_body
from chalicelib.channels.vonage_signature import verify
from chalicelib.domain.delivery import OutcomeKind, OutcomeReason
from infra.local.fake_provider import FakeProvider
from infra.local.vonage_contract import (
    problems,
    request_problems,
    response_validator,
    status_webhook_validator,
)

MESSAGES = [
    OutgoingMessage(channel="sms", to="+14155550001", sender="Acme", text="Hi Ann, 20% off", idempotency_key="c:r:1"),
    OutgoingMessage(
        channel="sms", to="+447700900000", sender="+14155550100", text="Olá 🎉" * 100, idempotency_key="k" * 150
    ),
    OutgoingMessage(
        channel="whatsapp",
        to="+5511955000001",
        sender="+14155550100",
        text="",
        idempotency_key="c:r:2",
        whatsapp=WhatsAppTemplate("ns_1:order_update", "pt_BR", ("Ana", "42")),
    ),
    OutgoingMessage(
        channel="whatsapp",
        to="+5511955000001",
        sender="+14155550100",
        text="",
        idempotency_key="c:r:3",
        whatsapp=WhatsAppTemplate("welcome", "en"),
    ),
    OutgoingMessage(
        channel="viber_service",
        to="+14155550001",
        sender="AcmeViber",
        text="Hi",
        idempotency_key="c:r:4",
        category="marketing",
    ),
]


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: f"{m.channel}-{m.idempotency_key[:8]}")
def test_every_request_the_adapter_sends_is_one_the_description_accepts(
    message: OutgoingMessage, provider: FakeProvider
) -> None:
    assert request_problems(request_body(message)) == []
    outcome = VonageMessages(provider.base_url, "key", "secret", 5).send(message)
    assert outcome.kind == OutcomeKind.ACCEPTED, outcome  # the fake checks the same description on receipt
    assert provider.stats()["accepted"] == 1


def send(provider: FakeProvider, body: Any, auth: tuple[str, str] | None = ("key", "secret")) -> httpx.Response:
    return httpx.post(f"{provider.base_url}/v1/messages", json=body, auth=auth, timeout=5)


SMS = request_body(MESSAGES[0])
WHATSAPP = request_body(MESSAGES[2])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in SMS.items() if k != "text"}, "text"),
        ({**SMS, "to": "1415"}, "to"),
        ({**SMS, "message_type": "image"}, "image"),
        ({**WHATSAPP, "whatsapp": {"policy": "fallback", "locale": "pt_BR"}}, "whatsapp.policy"),
        ({**WHATSAPP, "whatsapp": {"policy": "deterministic"}}, "locale"),
        ({**WHATSAPP, "template": {"parameters": ["x"]}}, "name"),
        ({**SMS, "channel": "carrier_pigeon"}, "channel"),
    ],
)
def test_the_fake_refuses_what_the_description_refuses(
    provider: FakeProvider, body: dict[str, Any], field: str
) -> None:
    answer = send(provider, body)
    assert answer.status_code == 422, answer.text
    assert field in json.dumps(answer.json()["invalid_parameters"]), answer.json()
    assert problems(response_validator(422), answer.json()) == []
    assert provider.stats()["accepted"] == 0


@pytest.mark.parametrize("status", [401, 402, 429, 500])
def test_the_fake_answers_each_described_status_as_described(provider: FakeProvider, status: int) -> None:
    provider.configure(fail_statuses={str(status): 1.0})
    answer = send(provider, SMS)
    assert answer.status_code == status
    assert problems(response_validator(status), answer.json()) == []


def test_an_accepted_send_and_a_missing_credential_are_answered_as_described(provider: FakeProvider) -> None:
    accepted = send(provider, SMS)
    assert accepted.status_code == 202 and problems(response_validator(202), accepted.json()) == []
    refused = send(provider, SMS, auth=None)
    assert refused.status_code == 401 and problems(response_validator(401), refused.json()) == []


def test_status_callbacks_are_the_described_statuses_signed_and_retried_as_vonage_does(provider: FakeProvider) -> None:
    received: list[tuple[Any, str]] = []
    refusals = {"left": 1}  # the receiver refuses the first callback once: it comes again, signed anew

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            refuse = refusals["left"] > 0
            refusals["left"] -= 1
            if not refuse:
                claims = verify(self.headers.get("Authorization"), raw, provider.signature_secret)
                received.append((json.loads(raw), str(claims["jti"])))
            self.send_response(503 if refuse else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        provider.configure(
            status_webhook_url=f"http://127.0.0.1:{server.server_address[1]}/status",
            receipts_by_number={"14155550099": "undeliverable"},
        )
        assert send(provider, SMS).status_code == 202
        assert send(provider, WHATSAPP).status_code == 202
        assert send(provider, {**SMS, "to": "14155550099"}).status_code == 202
        deadline = time.monotonic() + 10
        while len(received) < 7 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.shutdown()
    statuses: dict[str, list[str]] = {}  # each message's callbacks in order (messages' callbacks interleave)
    for callback, _ in received:
        statuses.setdefault(callback["to"], []).append(callback["status"])
    assert statuses == {
        "14155550001": ["submitted", "delivered"],
        WHATSAPP["to"]: ["submitted", "delivered", "read"],
        "14155550099": ["submitted", "undeliverable"],
    }
    for callback, _ in received:
        assert problems(status_webhook_validator(), callback) == [], callback
    assert len({jti for _, jti in received}) == 7
    assert provider.stats()["callbacks_retried"] == 1


SESSION = OutgoingMessage(
    channel="whatsapp",
    to="+5511955000001",
    sender="+14155550100",
    text="Olá Ana, seu pedido saiu",
    idempotency_key="c:r:5",
)


def test_a_whatsapp_session_message_is_a_described_text_and_its_refusal_outside_the_window_a_described_422(
    provider: FakeProvider,
) -> None:
    body = request_body(SESSION)
    assert body["message_type"] == "text" and body["channel"] == "whatsapp" and "template" not in body
    assert request_problems(body) == []
    refused = send(provider, body)  # nobody wrote: outside the window, as Vonage refuses it
    assert refused.status_code == 422
    assert problems(response_validator(422), refused.json()) == []
    outcome = VonageMessages(provider.base_url, "key", "secret", 5).send(SESSION)
    assert outcome.kind == OutcomeKind.PERMANENT and outcome.reason == OutcomeReason.NO_SESSION
    assert outcome.error is not None and outcome.error.startswith("no_session: WhatsApp refused free text")
    assert "error 1340" in outcome.error and "within 24 hours of the user's last message" in outcome.error
    assert provider.stats()["accepted"] == 0 and provider.stats()["outside_window"] == 2


# --- MMS, Viber and Messenger (decision 47): the same adapter, the channel's own part of the description ----

PSID = "7000000000000001"  # a page-scoped id: 16 digits, longer than any number
PAGE = "112233445566778"
MMS = OutgoingMessage(
    channel="mms",
    to="+14155550001",
    sender="+14155550100",
    text="Spring is here, Ann",
    idempotency_key="c:r:6",
    options=MessagesOptions(image_url="https://cdn.acme.example/spring.png"),
)
VIBER = OutgoingMessage(
    channel="viber_service",
    to="+14155550001",
    sender="AcmeViber",
    text="Your code is 1234",
    idempotency_key="c:r:7",
    options=MessagesOptions(viber_ttl=600),
)
MESSENGER = OutgoingMessage(
    channel="messenger",
    to=PSID,
    sender=PAGE,
    text="Your order shipped",
    idempotency_key="c:r:8",
    options=MessagesOptions(messenger_category="message_tag", messenger_tag="POST_PURCHASE_UPDATE"),
)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            MMS,
            {
                "message_type": "image",
                "image": {"url": "https://cdn.acme.example/spring.png", "caption": "Spring is here, Ann"},
            },
        ),
        (replace(MMS, text=""), {"message_type": "image", "image": {"url": "https://cdn.acme.example/spring.png"}}),
        (
            VIBER,
            {
                "message_type": "text",
                "text": "Your code is 1234",
                "viber_service": {"category": "transaction", "ttl": 600},
            },
        ),
        (
            MESSENGER,
            {
                "message_type": "text",
                "text": "Your order shipped",
                "messenger": {"category": "message_tag", "tag": "POST_PURCHASE_UPDATE"},
            },
        ),
    ],
    ids=["mms", "mms-without-caption", "viber-ttl", "messenger-tagged"],
)
def test_mms_viber_and_messenger_requests_are_their_channels_described_bodies_and_accepted(
    provider: FakeProvider, message: OutgoingMessage, expected: dict[str, Any]
) -> None:
    body = request_body(message)
    assert {k: v for k, v in body.items() if k not in ("to", "from", "channel", "client_ref")} == expected
    assert body["to"] == message.to.removeprefix("+") and body["from"] == message.sender.removeprefix("+")
    assert request_problems(body) == []
    outcome = VonageMessages(provider.base_url, "key", "secret", 5).send(message)
    assert outcome.kind == OutcomeKind.ACCEPTED, outcome
    assert provider.messages()[0]["channel"] == message.channel


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**request_body(MMS), "image": {"url": "http://cdn.acme.example/spring.png"}}, "image.url"),  # Vonage: https
        ({**request_body(MMS), "image": {"caption": "no url"}}, "url"),
        ({**request_body(MMS), "image": {"url": "https://a.example/i.png", "caption": "x" * 2001}}, "caption"),
        ({**request_body(MMS), "to": "1415"}, "to"),
        ({**request_body(VIBER), "viber_service": {"ttl": 5}}, "ttl"),
        ({**request_body(VIBER), "viber_service": {"category": "marketing"}}, "category"),
        ({**request_body(MESSENGER), "to": "ana.souza"}, "to"),  # not a page-scoped id
        ({**request_body(MESSENGER), "to": "7" * 51}, "to"),
        ({**request_body(MESSENGER), "from": "Acme Page"}, "from"),  # not a page id
        ({**request_body(MESSENGER), "messenger": {"category": "promotion"}}, "messenger.category"),
    ],
)
def test_the_fake_refuses_mms_viber_and_messenger_bodies_vonage_refuses(
    provider: FakeProvider, body: dict[str, Any], field: str
) -> None:
    answer = send(provider, body)
    assert answer.status_code == 422, answer.text
    assert field in json.dumps(answer.json()["invalid_parameters"]), answer.json()
    assert problems(response_validator(422), answer.json()) == []
    assert provider.stats()["accepted"] == 0


def test_an_untagged_messenger_message_to_someone_who_never_wrote_is_refused_as_outside_the_window(
    provider: FakeProvider,
) -> None:
    untagged = replace(MESSENGER, options=MessagesOptions(messenger_category="update"))
    assert request_problems(request_body(untagged)) == []
    outcome = VonageMessages(provider.base_url, "key", "secret", 5).send(untagged)
    assert outcome.kind == OutcomeKind.PERMANENT and outcome.reason == OutcomeReason.NO_SESSION
    assert outcome.error is not None and outcome.error.startswith("no_session: Messenger refused a message")
    provider.configure(inbound_webhook_url="http://127.0.0.1:9/inbound")  # nobody listens: only the window opens
    provider.inbound(PSID, PAGE, "hi", channel="messenger")
    assert VonageMessages(provider.base_url, "key", "secret", 5).send(untagged).kind == OutcomeKind.ACCEPTED
    assert (provider.stats()["outside_window"], provider.stats()["accepted"]) == (1, 1)


def test_mms_viber_and_messenger_status_callbacks_are_the_described_ones(provider: FakeProvider) -> None:
    received: list[dict[str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            verify(self.headers.get("Authorization"), raw, provider.signature_secret)
            received.append(json.loads(raw))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        provider.configure(status_webhook_url=f"http://127.0.0.1:{server.server_address[1]}/status")
        adapter = VonageMessages(provider.base_url, "key", "secret", 5)
        for message in (MMS, VIBER, MESSENGER):
            assert adapter.send(message).kind == OutcomeKind.ACCEPTED
        deadline = time.monotonic() + 10
        while len(received) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.shutdown()
    statuses: dict[str, list[str]] = {}
    for callback in received:
        statuses.setdefault(callback["channel"], []).append(callback["status"])
        assert problems(status_webhook_validator(), callback) == [], callback
    assert statuses == {
        "mms": ["submitted", "delivered"],  # MMS has no read (its described status has none)
        "viber_service": ["submitted", "delivered", "read"],
        "messenger": ["submitted", "delivered", "read"],
    }
    assert {c["to"] for c in received if c["channel"] == "messenger"} == {PSID}
    assert {c["client_ref"] for c in received} == {"c:r:6", "c:r:7", "c:r:8"}


def test_the_published_messenger_status_is_corrected_for_page_scoped_ids_only() -> None:
    """The one correction for these channels (infra/local/vonage_contract.py): a 16-digit page-scoped id passes a
    Messenger status, and still fails an SMS or MMS one, whose `to` is a number of 7 to 15 digits."""
    status = {
        "message_uuid": "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
        "to": PSID,
        "from": PAGE,
        "timestamp": "2026-11-27T02:00:00.000Z",
        "status": "read",
        "channel": "messenger",
    }
    assert problems(status_webhook_validator(), status) == []
    for channel in ("sms", "mms"):
        assert problems(status_webhook_validator(), {**status, "channel": channel, "status": "delivered"}) != []
