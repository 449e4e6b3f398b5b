"""The Voice adapter and the fake provider's Voice half held to Vonage's published Voice API 1.3.10
description: the create-call requests the adapter sends (with the NCCOs a campaign makes), the fake's
answer, and the fake refusing a request without the application's JWT or outside the description."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chalicelib.channels.base import OutgoingMessage, VoiceCall
from chalicelib.channels.vonage_voice import application_token, request_body
from chalicelib.domain import ncco
from chalicelib.domain.models import VoiceContent
from infra.local.fake_provider import FakeProvider
from infra.local.vonage_contract import call_request_problems, call_response_validator, problems

EVENT_URL = "https://api.example.com/v1/webhooks/vonage/voice?account=a&campaign=c&recipient=r&attempt=1"


def call(actions: list[dict[str, Any]], **fields: Any) -> OutgoingMessage:
    return OutgoingMessage(
        channel="voice",
        to="+14155550001",
        sender="+14155550100",
        text="",
        idempotency_key="c:r:1",
        voice=VoiceCall(ncco=actions, event_url=EVENT_URL, **fields),
    )


AGENT = {"type": "websocket", "uri": "wss://agent.example.com/socket", "content-type": "audio/l16;rate=16000"}
CALLS = [
    call(ncco.spoken_ncco("Olá Ana, a sua consulta é amanhã 🎉", "pt-BR", 2, True, None)),
    call(ncco.spoken_ncco("Hi Ann", "en-US", None, False, AGENT), machine_detection="hangup", ringing_timer=30),
    call(
        ncco.render_ncco(
            VoiceContent.model_validate(
                {
                    "ncco": [
                        {"action": "talk", "text": "Press 1", "bargeIn": True},
                        {"action": "input", "type": ["dtmf"], "dtmf": {"maxDigits": 1}},
                        {"action": "connect", "from": "14155550100", "endpoint": [{"type": "phone", "number": "1"}]},
                    ]
                }
            ).model_dump(mode="json")["ncco"],
            str,
        ),
        length_timer=7200,
    ),
]


@pytest.fixture(scope="module")
def application() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = serialization.Encoding.PEM
    private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


@pytest.fixture
def voice_provider(application: tuple[str, str]) -> Iterator[FakeProvider]:
    with FakeProvider(voice_public_key=application[1], voice_application_id="app-1") as fake:
        yield fake


@pytest.mark.parametrize("message", CALLS, ids=["spoken", "connected-to-an-agent", "own-ncco"])
def test_every_call_the_adapter_places_is_one_the_description_accepts(message: OutgoingMessage) -> None:
    body = request_body(message)
    assert call_request_problems(body) == []
    assert all(value is not None for action in body["ncco"] for value in action.values())


def test_the_fake_places_a_call_as_described_and_refuses_what_vonage_refuses(
    voice_provider: FakeProvider, application: tuple[str, str]
) -> None:
    token = application_token("app-1", application[0])
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    body = request_body(CALLS[0])
    with httpx.Client(base_url=voice_provider.base_url) as http:
        placed = http.post("/v1/calls", json=body, headers={"Authorization": f"Bearer {token}"})
        assert placed.status_code == 201 and problems(call_response_validator(), placed.json()) == []
        basic = http.post("/v1/calls", json=body, auth=("key", "secret"))
        assert basic.status_code == 401
        other_app = application_token("app-2", application[0])
        assert http.post("/v1/calls", json=body, headers={"Authorization": f"Bearer {other_app}"}).status_code == 401
        too_long = {**body, "ringing_timer": 600}
        refused = http.post("/v1/calls", json=too_long, headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 422 and "ringing_timer" in refused.text
    assert [c["uuid"] for c in voice_provider.voice.calls()] == [placed.json()["uuid"]]
