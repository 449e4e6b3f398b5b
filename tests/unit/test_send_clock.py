"""dispatch.SendClock on a simulated clock: a stalled process's late sends go out spaced, not in a burst."""

from __future__ import annotations

import pytest

from bench.pacing_bench import busiest_second
from chalicelib.domain.pacing import paced_rate
from chalicelib.workers.dispatch import SendClock

pytestmark = pytest.mark.unit


class SimulatedTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def sends(
    rate: float, places: list[float], arrivals: list[float], clock: SendClock | None, time: SimulatedTime
) -> list[float]:
    """Each send reaches the clock at its arrival (its place, or later after a stall); when it goes."""
    went = []
    for place, arrival in zip(places, arrivals, strict=True):
        time.now = max(time.now, place, arrival)
        if clock is not None:
            clock.wait_turn("campaign", rate)
        went.append(time.now)
    return went


@pytest.mark.parametrize("rate", [1.0, 50.0])
def test_sends_late_after_a_stall_are_spread_not_sent_in_a_burst(rate: float) -> None:
    interval = 1 / paced_rate(rate)
    places = [1000.0 + i * interval for i in range(int(rate) * 10)]
    # The process stalls for 0.2 s in the run's third second: every send due meanwhile reaches the clock
    # when it ends, at once. (A stall longer than MAX_SLIP_SECONDS can still bunch sends: the slip is capped
    # so that a pause stops sends within 2 s.)
    stall_from, stall_to = places[0] + 2.0, places[0] + 2.2
    arrivals = [stall_to if stall_from <= p < stall_to else p for p in places]
    time = SimulatedTime()
    unpaced = sends(rate, places, arrivals, None, time)
    time = SimulatedTime()
    paced = sends(rate, places, arrivals, SendClock(time.clock, time.sleep), time)
    if rate > 1:
        assert busiest_second(unpaced) > rate  # what the clock is for
    assert busiest_second(paced) <= rate
    assert all(
        0 <= went - place <= SendClock.MAX_SLIP_SECONDS + 0.25 for went, place in zip(paced, places, strict=True)
    )
    assert len(paced) / (paced[-1] - paced[0] + interval) >= 0.95 * rate


def test_a_send_waits_no_longer_than_the_slip_allows() -> None:
    time = SimulatedTime()
    clock = SendClock(time.clock, time.sleep)
    for _ in range(5):  # five sends at 1/s all arriving at once
        clock.wait_turn("campaign", 1.0)
    assert time.now - 1000.0 <= 4 * SendClock.MAX_SLIP_SECONDS + 1e-9
