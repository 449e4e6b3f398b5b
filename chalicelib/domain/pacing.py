"""Pacing arithmetic: how many recipients a release tick may hand to dispatch, in which chunks, when.

Each tick schedules the window from where the last one stopped to `now + horizon`; SQS DelaySeconds
places every chunk at its own second inside that window, so a minute's quota released at once still
goes out evenly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_SQS_DELAY_SECONDS = 900
# Campaigns and limits are paced this fraction below their rate: a send reaches the provider a few
# milliseconds after its place, by a varying amount, and at exactly the rate two neighbours could then
# land within one interval (decision 26).
PACING_GUARD = 0.03


def paced_rate(rate_per_second: float) -> float:
    """The rate sends are planned at: `rate_per_second` less the guard, so no one-second window holds
    more than the rate."""
    return rate_per_second * (1 - PACING_GUARD)


@dataclass(frozen=True)
class PlannedChunk:
    size: int
    delay_seconds: int


@dataclass(frozen=True)
class ReleasePlan:
    window_start: float
    quota: int
    chunks: tuple[PlannedChunk, ...]

    def released_until(self, released: int, rate_per_second: float) -> float:
        """Where the next window starts once `released` of the quota went out."""
        return self.window_start + released / rate_per_second


def chunk_size_for(rate_per_second: float, max_chunk_size: int) -> int:
    """About one chunk per second: small enough to keep the pace smooth, big enough to save SQS calls."""
    return max(1, min(max_chunk_size, math.ceil(rate_per_second)))


def plan_release(
    *, now: float, released_until: float, rate_per_second: float, horizon_seconds: float, max_chunk_size: int
) -> ReleasePlan:
    if rate_per_second <= 0:
        raise ValueError("rate_per_second must be positive")
    # At most one recipient's worth of unspent time carries over, so slow and fractional rates add up
    # across ticks; a longer gap (a pause, a late tick) restarts the pace with that one recipient's worth,
    # so a rate slower than one per horizon still releases one at each restart, and there is no burst.
    start = max(released_until, now - 1 / rate_per_second)
    end = now + horizon_seconds
    quota = math.floor((end - start) * rate_per_second + 1e-9) if end > start else 0
    size = chunk_size_for(rate_per_second, max_chunk_size)
    chunks = []
    for offset in range(0, quota, size):
        due = start + offset / rate_per_second
        delay = min(MAX_SQS_DELAY_SECONDS, max(0, math.ceil(due - now - 1e-6)))  # never early
        chunks.append(PlannedChunk(size=min(size, quota - offset), delay_seconds=delay))
    return ReleasePlan(window_start=start, quota=quota, chunks=tuple(chunks))
