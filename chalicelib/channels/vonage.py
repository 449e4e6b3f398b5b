"""Vonage Messages API: POST {base}/v1/messages, answer 202 {"message_uuid"}.

Vonage does not deduplicate on `client_ref`: a request that may have reached it (read timeout,
dropped connection) is reported as ambiguous, never as a transient failure to resend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from chalicelib.channels.base import MessagesOptions, OutgoingMessage
from chalicelib.channels.clients import ClientSet
from chalicelib.domain.delivery import OutcomeReason, SendOutcome
from chalicelib.once import made_once
from chalicelib.settings import get_settings

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# The account is refused (bad credentials, no balance left): no send of it can succeed until it is fixed.
ACCOUNT_STATUSES = frozenset({401, 402})
# The Messages API's error for free-form WhatsApp text to someone who has not written to the sending number in
# the last 24 hours ("Outside of the allowed window"): only an approved template reaches them (decision 46).
OUTSIDE_WINDOW_ERROR = "1340"


class VonageMessages:
    CHANNELS = frozenset({"sms", "whatsapp", "mms", "viber_service", "messenger"})
    honours_idempotency_key = False
    asynchronous_outcome = False
    max_text_chars: int | None = 1000  # the Messages API's limit on `text` (SMS, Viber; WhatsApp as SMS here)
    # Messenger's text is 640 characters at most; an MMS's caption (our text) 2,000 (Messages API 1.4.0).
    text_limits: dict[str, int] = {"messenger": 640, "mms": 2000}

    def __init__(self, base_url: str, api_key: str, api_secret: str, timeout_seconds: float) -> None:
        # Shared by the concurrent sends of every invocation in this process (several on the local stack).
        self._clients = ClientSet(
            lambda limits, verify: httpx.Client(
                base_url=base_url,
                auth=httpx.BasicAuth(api_key, api_secret),
                timeout=timeout_seconds,
                limits=limits,
                verify=verify,
                follow_redirects=False,
            ),
            connections=256,
        )

    def send(self, message: OutgoingMessage) -> SendOutcome:
        body = request_body(message)
        client = self._clients.next()
        return sent(lambda: client.post("/v1/messages", json=body), "message_uuid", (200, 202), message.channel)


def sent(
    post: Callable[[], httpx.Response], id_field: str, accepted: tuple[int, ...], channel: str | None = None
) -> SendOutcome:
    """A Vonage API request's outcome: accepted (one of the `accepted` statuses, with the id its answer names
    in `id_field`), refused for the account, transient (429, 5xx) or permanent; unreachable (nothing sent)
    or ambiguous (it may have reached the provider) when no answer came."""
    try:
        answer = post()
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        error = f"provider unreachable: {type(exc).__name__}"  # nothing was sent
        return SendOutcome.transient(error, reason=OutcomeReason.UNREACHABLE)
    except httpx.TransportError as exc:  # sent, or partly sent, with no answer
        return SendOutcome.ambiguous(f"no answer from the provider: {type(exc).__name__}")
    if answer.status_code in accepted:
        return SendOutcome.accepted(_answer_id(answer, id_field))
    detail = error_detail(answer)
    if answer.status_code in ACCOUNT_STATUSES:
        return SendOutcome.account(detail)
    if answer.status_code in TRANSIENT_STATUSES:
        reason = OutcomeReason.THROTTLED if answer.status_code == 429 else OutcomeReason.PROVIDER_ERROR
        return SendOutcome.transient(detail, retry_after_seconds=retry_after(answer), reason=reason)
    if error_code(answer) == OUTSIDE_WINDOW_ERROR:
        return SendOutcome.permanent(outside_window(channel, detail), reason=OutcomeReason.NO_SESSION)
    return SendOutcome.permanent(detail)


def outside_window(channel: str | None, detail: str) -> str:
    """The failure of a message refused outside the person's 24-hour window (error 1340): on WhatsApp only an
    approved template reaches them, on Messenger only a tagged message (`message_tag`)."""
    if channel == "messenger":
        return (
            "no_session: Messenger refused a message outside the 24 hours after the person last wrote to the page "
            f"(Messages API error {OUTSIDE_WINDOW_ERROR}; only a `message_tag` message reaches them); {detail}"
        )
    return (
        "no_session: WhatsApp refused free text outside the recipient's 24-hour window (Messages API error "
        f"{OUTSIDE_WINDOW_ERROR}; only an approved template reaches them); {detail}"
    )


def error_code(answer: httpx.Response) -> str | None:
    """The Messages API's error code of a refusal: the fragment of its problem `type`
    (`.../api-errors/messages-olympus#1340`), else its `title` when that is a code."""
    try:
        body = answer.json()
        kind, title = str(body.get("type") or ""), str(body.get("title") or "")
    except (ValueError, AttributeError):
        return None
    code = kind.rpartition("#")[2] if "#" in kind else ""
    return code or (title if title.isdigit() else None)


def request_body(message: OutgoingMessage) -> dict[str, Any]:
    """The Messages API request: a text, or on WhatsApp an approved template with its parameters; an MMS's
    image with its caption; Viber's and Messenger's text with their own options."""
    body: dict[str, Any] = {
        "to": message.to.removeprefix("+"),  # Vonage takes numbers without the '+' (a Messenger id has none)
        "from": message.sender.removeprefix("+"),
        "channel": message.channel,
        "client_ref": message.idempotency_key[:100],
    }
    options = message.options or MessagesOptions()
    if message.channel == "mms":
        image: dict[str, Any] = {"url": options.image_url}
        if message.text:
            image["caption"] = message.text
        return {**body, "message_type": "image", "image": image}
    if message.channel == "viber_service":  # the category Viber asks of a business message
        viber: dict[str, Any] = {"category": "promotion" if message.category == "marketing" else "transaction"}
        if options.viber_ttl is not None:
            viber["ttl"] = options.viber_ttl
        return {**body, "message_type": "text", "text": message.text, "viber_service": viber}
    if message.channel == "messenger":  # Facebook's messaging type (Vonage's default would be `response`)
        messenger: dict[str, Any] = {"category": options.messenger_category or "update"}
        if options.messenger_tag:
            messenger["tag"] = options.messenger_tag
        return {**body, "message_type": "text", "text": message.text, "messenger": messenger}
    if message.whatsapp is None:
        return {**body, "message_type": "text", "text": message.text}
    return {
        **body,
        "message_type": "template",
        "template": {"name": message.whatsapp.name, "parameters": list(message.whatsapp.parameters)},
        # deterministic: the template in exactly this language, or not at all (no silent fallback).
        "whatsapp": {"policy": "deterministic", "locale": message.whatsapp.locale},
    }


def _answer_id(answer: httpx.Response, field: str) -> str | None:
    """The id the provider's answer names (an unreadable body is no failure: the send was taken)."""
    try:
        value = answer.json().get(field)
    except (ValueError, AttributeError):
        return None
    return str(value) if value else None


def error_detail(answer: httpx.Response) -> str:
    try:
        body = answer.json()
        text = body.get("detail") or body.get("title") or ""
    except (ValueError, AttributeError):
        text = answer.text[:200]
    return f"provider answered {answer.status_code}: {text}".strip()


def retry_after(answer: httpx.Response) -> float | None:
    try:
        return float(answer.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def vonage_messages() -> VonageMessages:
    """The adapter for the current settings (one client, and its connection pool, per configuration)."""
    s = get_settings()
    return _adapter(s.vonage_base_url, s.vonage_api_key, s.vonage_api_secret, s.provider_timeout_seconds)


@made_once(4)
def _adapter(base_url: str, api_key: str, api_secret: str, timeout_seconds: float) -> VonageMessages:
    return VonageMessages(base_url, api_key, api_secret, timeout_seconds)
