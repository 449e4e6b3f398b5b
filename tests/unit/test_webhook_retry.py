"""Webhook retries back off: 5 s, doubling, never past SQS's 15-minute delay (decision 41)."""

from __future__ import annotations

from chalicelib.operations.webhooks import retry_delay


def test_delays_grow_from_the_first_and_stop_at_fifteen_minutes() -> None:
    assert [retry_delay(attempt, 5) for attempt in range(1, 10)] == [5, 10, 20, 40, 80, 160, 320, 640, 900]
    assert retry_delay(40, 5) == 900
    # A day of retries: how many tries that takes, the last ones 15 minutes apart.
    elapsed, attempt = 0, 1
    while elapsed < 86_400:
        elapsed += retry_delay(attempt, 5)
        attempt += 1
    assert 95 < attempt < 110
