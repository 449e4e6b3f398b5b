import pytest
from pydantic import ValidationError

from chalicelib.domain.delivery import OutcomeReason as R
from chalicelib.domain.retry import NO_RETRIES, RetryPolicy

pytestmark = pytest.mark.unit


def test_backoff_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=6, initial_delay_seconds=10, backoff_multiplier=2, max_delay_seconds=60)
    assert [policy.delay_after(n) for n in range(1, 6)] == [10, 20, 40, 60, 60]


def test_tries_on_a_destination_stop_at_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.retries(R.PROVIDER_ERROR, 1)
    assert policy.retries(R.PROVIDER_ERROR, 2)
    assert not policy.retries(R.PROVIDER_ERROR, 3)


def test_only_the_listed_outcomes_are_retried_and_rejections_and_timeouts_never() -> None:
    policy = RetryPolicy(max_attempts=5, retry_on=["busy", "no_answer"])
    assert policy.retries(R.BUSY, 1) and policy.retries(R.NO_ANSWER, 4)
    assert not policy.retries(R.PROVIDER_ERROR, 1)
    default = RetryPolicy(max_attempts=5)
    assert not default.retries(R.REJECTED, 1) and not default.retries(R.TIMEOUT, 1)
    with pytest.raises(ValidationError, match="retry_on"):
        RetryPolicy.model_validate({"retry_on": ["rejected"]})
    with pytest.raises(ValidationError, match="more than once"):
        RetryPolicy.model_validate({"retry_on": ["busy", "busy"]})


def test_failover_follows_failover_on_and_never_a_timeout() -> None:
    default = RetryPolicy()
    assert default.fails_over(R.REJECTED) and default.fails_over(R.THROTTLED)
    assert not default.fails_over(R.TIMEOUT)
    assert not RetryPolicy(failover_on=[]).fails_over(R.REJECTED)
    with pytest.raises(ValidationError, match="failover_on"):
        RetryPolicy.model_validate({"failover_on": ["timeout"]})


def test_no_policy_means_one_try_and_no_failover() -> None:
    assert not NO_RETRIES.retries(R.PROVIDER_ERROR, 1)
    assert not NO_RETRIES.fails_over(R.REJECTED)


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
