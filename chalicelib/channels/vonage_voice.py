"""Vonage Voice API: POST {base}/v1/calls with an NCCO, answer 201 {"uuid", "status": "started"}.

Calls are made as a Vonage application: each request carries a JWT (RS256) signed with the application's
private key, read from Secrets Manager. An accepted call is not yet an outcome: the call's events arrive on
its `event_url` (operations/calls.py). Vonage does not deduplicate call requests, so one that may have
reached it (a read timeout) is ambiguous, never resent.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import jwt

from chalicelib.channels.base import OutgoingMessage
from chalicelib.channels.clients import ClientSet
from chalicelib.channels.vonage import sent
from chalicelib.domain.delivery import SendOutcome
from chalicelib.domain.ncco import MAX_TALK_CHARS
from chalicelib.once import made_once
from chalicelib.settings import get_settings
from chalicelib.store.secrets import SecretGone, read_secret

# A JWT is good for this long (Vonage takes up to 24 hours; a short one limits what a leak gives away).
TOKEN_SECONDS = 300


class VonageVoice:
    CHANNELS = frozenset({"voice"})
    honours_idempotency_key = False
    asynchronous_outcome = True
    max_text_chars: int | None = MAX_TALK_CHARS  # text to speech: 1,500 characters per `talk`

    def __init__(self, base_url: str, application_id: str, key_secret: str, timeout_seconds: float) -> None:
        self._application_id = application_id
        self._key_secret = key_secret
        self._clients = ClientSet(
            lambda limits, verify: httpx.Client(
                base_url=base_url, timeout=timeout_seconds, limits=limits, verify=verify, follow_redirects=False
            ),
            connections=256,
        )

    def send(self, message: OutgoingMessage) -> SendOutcome:
        try:
            token = application_token(self._application_id, read_secret(self._key_secret))
        except (SecretGone, ValueError, jwt.InvalidKeyError) as exc:
            return SendOutcome.account(f"the Vonage application's private key cannot be used: {exc}")
        headers = {"Authorization": f"Bearer {token}"}
        client = self._clients.next()
        return sent(lambda: client.post("/v1/calls", json=request_body(message), headers=headers), "uuid", (200, 201))


def application_token(application_id: str, private_key: str, now: float | None = None) -> str:
    """The application's JWT for one request (a fresh `jti` each time, as Vonage asks)."""
    issued = int(time.time() if now is None else now)
    claims = {"application_id": application_id, "iat": issued, "exp": issued + TOKEN_SECONDS, "jti": str(uuid.uuid4())}
    return jwt.encode(claims, private_key, algorithm="RS256")


def request_body(message: OutgoingMessage) -> dict[str, Any]:
    """The Voice API's create-call request (its `CreateCallRequestNcco` form)."""
    call = message.voice
    if call is None:
        raise ValueError("a voice message has its call")
    body: dict[str, Any] = {
        "to": [{"type": "phone", "number": message.to.removeprefix("+")}],
        "from": {"type": "phone", "number": message.sender.removeprefix("+")},
        "ncco": call.ncco,
        "event_url": [call.event_url],
        "event_method": "POST",
        "ringing_timer": call.ringing_timer,
        "length_timer": call.length_timer,
    }
    if call.machine_detection:
        body["machine_detection"] = call.machine_detection
    return body


def vonage_voice() -> VonageVoice:
    s = get_settings()
    return _adapter(s.vonage_base_url, s.vonage_application_id, s.vonage_private_key_secret, s.provider_timeout_seconds)


@made_once(4)
def _adapter(base_url: str, application_id: str, key_secret: str, timeout_seconds: float) -> VonageVoice:
    return VonageVoice(base_url, application_id, key_secret, timeout_seconds)
