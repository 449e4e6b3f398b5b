import pytest
from pydantic import ValidationError

from chalicelib.domain.retry import NO_RETRIES, RetryPolicy

pytestmark = pytest.mark.unit


def test_backoff_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=6, initial_delay_seconds=10, backoff_multiplier=2, max_delay_seconds=60)
    assert [policy.delay_after(n) for n in range(1, 6)] == [10, 20, 40, 60, 60]


def test_attempts_stop_at_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.allows_attempt_after(1)
    assert policy.allows_attempt_after(2)
    assert not policy.allows_attempt_after(3)


def test_no_policy_means_one_attempt() -> None:
    assert not NO_RETRIES.allows_attempt_after(1)


def test_a_longer_retry_after_from_the_provider_wins_but_never_past_the_cap() -> None:
    policy = RetryPolicy(initial_delay_seconds=5, max_delay_seconds=100)
    assert policy.delay_after(1, retry_after_seconds=30) == 30
    assert policy.delay_after(1, retry_after_seconds=1) == 5
    assert policy.delay_after(1, retry_after_seconds=10_000) == 100


def test_policy_rejects_a_cap_below_the_first_delay_and_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="max_delay_seconds must be at least"):
        RetryPolicy(initial_delay_seconds=60, max_delay_seconds=10)
    with pytest.raises(ValidationError, match="Extra inputs"):
        RetryPolicy.model_validate({"max_attempts": 2, "jitter": True})
