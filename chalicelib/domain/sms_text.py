"""How an SMS text travels: its encoding (GSM-7 when every character is in the GSM 03.38 alphabet, else
UCS-2) and how many segments a handset receives (one up to 160 GSM-7 septets or 70 UCS-2 code units;
longer texts are split into parts of 153 or 67, the rest of each part carrying the concatenation header).
Characters of the GSM extension table (e.g. `{`, `€`) take two septets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = "\f^{}\\[~]|€"
_BASIC = frozenset(GSM_BASIC) - {"\x1b"}
_EXTENSION = frozenset(GSM_EXTENSION)

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True)
class SmsParts:
    encoding: Encoding
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def sms_parts(text: str) -> SmsParts:
    if all(c in _BASIC or c in _EXTENSION for c in text):
        units = sum(2 if c in _EXTENSION else 1 for c in text)
        return SmsParts("GSM-7", units, _segments(units, single=160, part=153))
    units = len(text.encode("utf-16-le")) // 2  # an emoji outside the BMP is two
    return SmsParts("UCS-2", units, _segments(units, single=70, part=67))


def _segments(units: int, *, single: int, part: int) -> int:
    if units <= single:
        return 1
    return math.ceil(units / part)
