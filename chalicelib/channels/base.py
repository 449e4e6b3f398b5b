"""What every channel adapter offers the dispatch worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chalicelib.domain.delivery import SendOutcome


@dataclass(frozen=True)
class OutgoingMessage:
    channel: str
    to: str  # E.164
    sender: str
    text: str
    idempotency_key: str  # {campaign}:{recipient}:{attempt}


class Channel(Protocol):
    # True only when the provider deduplicates on the idempotency key: then a send that may already have
    # happened (a crash, a timeout after sending) is repeated with the same key; else it is `unknown`.
    honours_idempotency_key: bool
    # The longest text the provider takes (None: no limit): a longer rendered text fails before sending.
    max_text_chars: int | None

    def send(self, message: OutgoingMessage) -> SendOutcome:
        """Never raises: every answer, and every failure to get one, is a SendOutcome."""
        ...
