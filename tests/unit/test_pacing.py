import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.pacing import MAX_SQS_DELAY_SECONDS, chunk_size_for, plan_release

pytestmark = pytest.mark.unit


def test_a_minute_at_fifty_per_second_is_sixty_chunks_one_per_second() -> None:
    plan = plan_release(now=1000.0, released_until=1000.0, rate_per_second=50, horizon_seconds=60, max_chunk_size=50)
    assert plan.quota == 3000
    assert len(plan.chunks) == 60
    assert [c.delay_seconds for c in plan.chunks] == list(range(60))
    assert all(c.size == 50 for c in plan.chunks)


def test_the_next_tick_continues_where_the_last_window_ended() -> None:
    first = plan_release(now=1000.0, released_until=1000.0, rate_per_second=10, horizon_seconds=1, max_chunk_size=50)
    until = first.released_until(first.quota, 10)
    second = plan_release(now=1000.5, released_until=until, rate_per_second=10, horizon_seconds=1, max_chunk_size=50)
    assert first.quota == 10
    assert until == pytest.approx(1001.0)
    assert second.quota == 5  # only the half second not yet released


def test_nothing_is_released_while_the_window_is_already_covered() -> None:
    plan = plan_release(now=1000.0, released_until=1001.0, rate_per_second=10, horizon_seconds=1, max_chunk_size=50)
    assert plan.quota == 0 and plan.chunks == ()


def test_a_short_release_moves_the_window_only_as_far_as_it_went() -> None:
    plan = plan_release(now=1000.0, released_until=1000.0, rate_per_second=10, horizon_seconds=10, max_chunk_size=50)
    assert plan.released_until(30, 10) == pytest.approx(1003.0)


def test_a_paused_campaign_does_not_burst_when_resumed() -> None:
    plan = plan_release(now=5000.0, released_until=1000.0, rate_per_second=10, horizon_seconds=1, max_chunk_size=50)
    assert plan.quota == 11  # the horizon's 10, and the one recipient's worth a restart carries over


def test_a_rate_slower_than_one_per_horizon_still_releases_one_at_each_restart() -> None:
    # 0.97/s on a 1 s horizon (a 1/s campaign, guarded, on the local stage), restarted after a gap.
    plan = plan_release(now=5000.0, released_until=1000.0, rate_per_second=0.97, horizon_seconds=1, max_chunk_size=50)
    assert plan.quota == 1 and plan.chunks[0].delay_seconds == 0


def run_ticks(rate: float, horizon: float, seconds: int) -> int:
    """Tick once per horizon for `seconds`, as the pacer does, releasing the whole quota each time."""
    released, until, now = 0, 1000.0, 1000.0
    while now < 1000.0 + seconds:
        plan = plan_release(
            now=now, released_until=until, rate_per_second=rate, horizon_seconds=horizon, max_chunk_size=50
        )
        released += plan.quota
        until = plan.released_until(plan.quota, rate) if plan.quota else until
        now += horizon
    return released


@pytest.mark.parametrize(("rate", "horizon", "expected"), [(0.5, 1, 30), (1.5, 1, 90), (0.01, 60, 1), (7.3, 60, 438)])
def test_slow_and_fractional_rates_add_up_across_ticks(rate: float, horizon: float, expected: int) -> None:
    assert run_ticks(rate, horizon, seconds=60) == pytest.approx(expected, abs=1)


def test_slow_rates_send_one_recipient_per_chunk() -> None:
    assert chunk_size_for(0.5, 50) == 1
    assert chunk_size_for(7.2, 50) == 8
    assert chunk_size_for(900, 50) == 50


@given(
    rate=st.floats(min_value=0.1, max_value=1000),
    horizon=st.floats(min_value=0.5, max_value=120),
    behind=st.floats(min_value=0, max_value=30),
)
def test_chunks_add_up_to_the_quota_and_never_run_ahead_of_the_rate(rate: float, horizon: float, behind: float) -> None:
    now = 10_000.0
    plan = plan_release(
        now=now, released_until=now - behind, rate_per_second=rate, horizon_seconds=horizon, max_chunk_size=50
    )
    assert sum(c.size for c in plan.chunks) == plan.quota
    # A window starts no further back than one recipient's worth of time.
    assert now - plan.window_start <= 1 / rate + 1e-9
    assert plan.quota <= rate * (now + horizon - plan.window_start) + 1e-6
    delays = [c.delay_seconds for c in plan.chunks]
    assert delays == sorted(delays)
    assert all(0 <= d <= MAX_SQS_DELAY_SECONDS for d in delays)
    sent_before = 0
    for chunk in plan.chunks:  # by each chunk's due second, no more than the rate allows has gone out
        assert sent_before <= rate * (chunk.delay_seconds + 1) + 1 + 1e-6
        sent_before += chunk.size


def test_sends_waiting_for_their_receipt_do_not_hold_the_release_back() -> None:
    from chalicelib.operations.pacer import outstanding

    campaign = {"released": 100, "in_flight": 30, "succeeded": 60, "waiting": 0}
    assert outstanding(campaign) == 10 + 30  # 10 released, not claimed yet; 30 sending
    assert outstanding({**campaign, "receipts.waiting": 25}) == 10 + 5  # 25 of them sent, waiting for receipts
    assert outstanding({**campaign, "receipts.waiting": 40}) == 10  # a counter ahead of in_flight (stream order)
