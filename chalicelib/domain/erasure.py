"""Erasure (decision 42), the pure part: who is erased (their addresses and recipient ids), and how a value
that mentions them is rewritten without them.

A string equal to one of the person's recipient ids becomes their erased id (`erased_<keyed hash>`, the same
for the same id, so counters and an erased delivery stay joined); any other string has each of the person's
addresses cut out, in E.164 and in the digits-only form providers use (`14155550100`), and for an email in
any letter case. Everything else is kept as it is."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ERASED = "[erased]"
ERASED_ID_PREFIX = "erased_"

# What an erased delivery keeps: its state and counts, never an address, a text or a provider's reference.
DELIVERY_KEPT = frozenset(
    {
        "pk", "state", "attempt", "destination_index", "destination_try", "variant", "segment", "channel_step",
        "skip_reason", "receipt", "receipt_rank", "receipt_at", "delivered_at", "read_at", "updated_at",
        "ended_at", "expires_at", "last_reason", "call_status", "call_started_at", "call_ended_at",
        "call_duration", "call_price", "call_answered_by", "last_reply_at", "clicks", "conversions",
    }
)  # fmt: skip
HISTORY_KEPT = frozenset(
    {"attempt", "destination_index", "try", "channel", "outcome", "reason", "started_at", "ended_at"}
)


@dataclass(frozen=True)
class Person:
    """The addresses and the recipient ids an erasure removes."""

    addresses: frozenset[str]
    ids: frozenset[str]

    def needles(self) -> list[str]:
        """Every text form of the addresses, longest first (so `+1415…` goes before `1415…`)."""
        forms: set[str] = set()
        for address in self.addresses:
            forms.add(address)
            if address.startswith("+") and address[1:].isdigit():
                forms.add(address[1:])
        return sorted(forms, key=len, reverse=True)

    def pattern(self) -> re.Pattern[str] | None:
        needles = self.needles()
        if not needles:
            return None
        return re.compile("|".join(re.escape(n) for n in needles), re.IGNORECASE)

    def has_any(self, addresses: set[str]) -> bool:
        """Whether one of `addresses` is the person's (an email's letter case aside: `Ada@` is `ada@`)."""
        mine = {fold(a) for a in self.addresses}
        return any(fold(a) in mine for a in addresses)

    def mentioned_in(self, text: str) -> bool:
        pattern = self.pattern()
        return bool(pattern and pattern.search(text)) or any(rid in text for rid in self.ids)


class Scrubber:
    """Rewrites values without the person: `rename` gives a recipient id's erased id."""

    def __init__(self, person: Person, rename: Callable[[str], str]) -> None:
        self.person = person
        self.rename = rename
        self._pattern = person.pattern()

    def text(self, value: str) -> str:
        if value in self.person.ids:
            return self.rename(value)
        if self._pattern is None:
            return value
        return self._pattern.sub(ERASED, value)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, (set, frozenset)):
            return {self.value(item) for item in value}
        return value

    def delivery(self, item: dict[str, Any], erased_at: float) -> dict[str, Any]:
        """An erased copy of a delivery: under the erased id, its state and counts, no personal field."""
        kept = {name: value for name, value in item.items() if name in DELIVERY_KEPT}
        if item.get("history"):
            kept["history"] = [
                {name: value for name, value in record.items() if name in HISTORY_KEPT} for record in item["history"]
            ]
        kept = self.value(kept)
        kept["sk"] = self.rename(str(item["sk"]))
        kept["erased_at"] = erased_at
        return dict(kept)


def fold(address: str) -> str:
    """An address as compared: an email in lower case (mail systems treat the local part's case alike)."""
    return address.lower() if "@" in address else address


def is_erased_id(rid: str) -> bool:
    return rid.startswith(ERASED_ID_PREFIX)
