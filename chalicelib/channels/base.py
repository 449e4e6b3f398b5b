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
    def send(self, message: OutgoingMessage) -> SendOutcome: ...
