"""Hot partition keys: the most writes any one partition key took within one second.

The window slides over the writes' own times (not whole clock seconds), so a burst that straddles a
second boundary is counted whole. Keys are grouped by kind, their ids stripped:
`acc_1f..#C#cmp_9a..#3` is `<acc>#C#<cmp>#<n>`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from bench.aws_calls import KeyWrite

WINDOW_SECONDS = 1.0
_ID = re.compile(r"([a-z]{2,8})_[0-9a-zA-Z]{6,}")
_PHONE = re.compile(r"\+?\d{7,15}")
_HEX = re.compile(r"[0-9a-fA-F]{16,}")
_UUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_NUMBER = re.compile(r"\d{1,6}")


@dataclass(frozen=True)
class KindPeak:
    table: str
    kind: str
    keys: int  # distinct keys of this kind written
    writes: int
    peak: int  # most writes on one key of this kind within any WINDOW_SECONDS
    peak_key: str
    most_on_one_key: int  # writes over the whole phase on the busiest key of this kind


def key_kind(key: str) -> str:
    """The key with its ids replaced by what they are."""
    return "#".join(_part_kind(part) for part in key.split("#"))


def _part_kind(part: str) -> str:
    if match := _ID.fullmatch(part):
        return f"<{match.group(1)}>"
    if _NUMBER.fullmatch(part):
        return "<n>"
    if _PHONE.fullmatch(part):
        return "<phone>"
    if _UUID.fullmatch(part):
        return "<uuid>"
    if _HEX.fullmatch(part):
        return "<hash>"
    return part


def peak_in_window(times: list[float], window: float = WINDOW_SECONDS) -> int:
    """Most of these times that fall within any `window` seconds."""
    times = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def peaks_by_kind(writes: Iterable[KeyWrite], start: float, end: float) -> list[KindPeak]:
    """One row per (table, key kind) written between `start` and `end`, hottest first."""
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    for write in writes:
        if start <= write.at <= end:
            times[(write.table, write.partition_key)].append(write.at)
    kinds: dict[tuple[str, str], list[tuple[int, str, int]]] = defaultdict(list)  # -> (peak, key, writes)
    for (table, key), at in times.items():
        kinds[(table, key_kind(key))].append((peak_in_window(at), key, len(at)))
    rows = []
    for (table, kind), keys in kinds.items():
        peak, key, _ = max(keys)
        rows.append(KindPeak(table, kind, len(keys), sum(n for *_, n in keys), peak, key, max(n for *_, n in keys)))
    return sorted(rows, key=lambda r: (-r.peak, r.table, r.kind))


def hottest(rows: list[KindPeak]) -> KindPeak | None:
    return rows[0] if rows else None
