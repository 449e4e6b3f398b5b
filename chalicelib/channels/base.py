"""What every channel adapter offers the dispatch worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib.domain.delivery import SendOutcome


@dataclass(frozen=True)
class EmailParts:
    """An email's rendered parts beside its text (the campaign's `email`, each recipient's own)."""

    subject: str
    html: str | None = None
    from_name: str | None = None
    reply_to: str | None = None
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None
    configuration_set: str | None = None


@dataclass(frozen=True)
class HttpRequest:
    """One recipient's rendered request, with the action's rules for its answer."""

    method: str
    url: str
    headers: dict[str, str]
    body: str | None
    content_type: str
    timeout_seconds: float
    auth: dict[str, Any]  # type, username, signature_header, secret_name
    success_statuses: tuple[int, ...]
    success_json_field: str | None
    success_json_value: Any
    retry_statuses: tuple[int, ...]


@dataclass(frozen=True)
class WhatsAppTemplate:
    """An approved WhatsApp template with its parameters rendered for one recipient."""

    name: str
    locale: str
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class MessagesOptions:
    """What the Messages API's other channels take beside the text (each only on its channel): an MMS's image
    (the text is its caption), Viber's time to live, Messenger's category and tag."""

    image_url: str | None = None
    viber_ttl: int | None = None
    messenger_category: str | None = None
    messenger_tag: str | None = None


@dataclass(frozen=True)
class VoiceCall:
    """A call's NCCO, rendered for one recipient, and where its events go."""

    ncco: list[dict[str, Any]]
    event_url: str
    machine_detection: str | None = None
    ringing_timer: int = 60
    length_timer: int = 900


@dataclass(frozen=True)
class OutgoingMessage:
    channel: str
    to: str  # E.164, or an email address
    sender: str
    text: str
    idempotency_key: str  # {campaign}:{recipient}:{attempt}
    email: EmailParts | None = None
    whatsapp: WhatsAppTemplate | None = None
    http: HttpRequest | None = None  # an HTTP action's request, rendered for this recipient
    voice: VoiceCall | None = None
    options: MessagesOptions | None = None  # MMS, Viber, Messenger (the Messages API's other channels)
    category: str | None = None  # the campaign's: `marketing` is a Viber `promotion`, else a `transaction`
    # Kept by the provider with the message, where it can (SES email tags): campaign, recipient and attempt
    # (SES's events name the delivery by them when the message's headers are not in the event).
    tags: dict[str, str] = field(default_factory=dict)


class Channel(Protocol):
    # True only when the provider deduplicates on the idempotency key: then a send that may already have
    # happened (a crash, a timeout after sending) is repeated with the same key; else it is `unknown`.
    honours_idempotency_key: bool
    # True when an accepted send is not yet the outcome (a call): it stays in flight until the provider's
    # event says how it ended, or is swept to `unknown` when none came (operations/calls.py).
    asynchronous_outcome: bool
    # The longest text the provider takes (None: no limit): a longer rendered text fails before sending.
    # An adapter with several channels may set `text_limits` per channel beside it (see `text_limit`).
    max_text_chars: int | None

    def send(self, message: OutgoingMessage) -> SendOutcome:
        """Never raises: every answer, and every failure to get one, is a SendOutcome."""
        ...


def text_limit(adapter: Channel, channel: str) -> int | None:
    """The longest text `adapter` takes on `channel`: its own limit for that channel, else its `max_text_chars`."""
    limits: dict[str, int] = getattr(adapter, "text_limits", {})
    return limits.get(channel, adapter.max_text_chars)
