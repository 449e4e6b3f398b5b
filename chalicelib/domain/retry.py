"""When a failed attempt is tried again on the same destination, when the recipient's next destination is
tried instead (failover), and when the recipient fails."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chalicelib.domain.delivery import OutcomeReason

# Outcomes that may be tried again on the same destination: the provider may take the next try.
RetryableReason = Literal["throttled", "provider_error", "unreachable", "busy", "no_answer", "machine"]
# Outcomes after which the recipient's next destination may be tried. A `timeout` (the send may have
# happened) is never among them: it is recorded `unknown`, not sent again anywhere.
FailoverReason = Literal["throttled", "provider_error", "unreachable", "busy", "no_answer", "machine", "rejected"]
RETRYABLE: tuple[RetryableReason, ...] = get_args(RetryableReason)
FAILOVER: tuple[FailoverReason, ...] = get_args(FailoverReason)


class RetryPolicy(BaseModel):
    """Tries per destination with exponential backoff for the outcomes in `retry_on`; then, for the
    outcomes in `failover_on`, the recipient's next destination for the channel (in the order of its
    destinations), with tries of its own; when every destination is spent, the recipient fails with the
    last reason."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_attempts: int = Field(
        3, strict=False, ge=1, le=10, description="Tries on each destination, the first one included."
    )
    initial_delay_seconds: float = Field(30, ge=1, le=86_400, description="Wait before the second try.")
    backoff_multiplier: float = Field(2.0, ge=1, le=10, description="Each later wait is this many times longer.")
    max_delay_seconds: float = Field(3_600, ge=1, le=86_400, description="No wait is longer than this.")
    retry_on: list[RetryableReason] = Field(
        default_factory=lambda: list(RETRYABLE),
        max_length=len(RETRYABLE),
        description="Outcomes tried again on the same destination (default: all of them). `rejected` (the "
        "provider refused the message or number for good) and `timeout` (the send may have happened) never are.",
    )
    failover_on: list[FailoverReason] = Field(
        default_factory=lambda: list(FAILOVER),
        max_length=len(FAILOVER),
        description="Outcomes after which, once the destination's tries are spent, the recipient's next "
        "destination for the channel is tried (default: all but `timeout`); [] turns failover off.",
    )

    @field_validator("retry_on", "failover_on")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("lists an outcome more than once")
        return value

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> RetryPolicy:
        if self.max_delay_seconds < self.initial_delay_seconds:
            raise ValueError("max_delay_seconds must be at least initial_delay_seconds")
        return self

    def retries(self, reason: OutcomeReason | None, tries: int) -> bool:
        """Whether a destination tried `tries` times, the last ending in `reason`, is tried again."""
        return reason is not None and reason.value in self.retry_on and tries < self.max_attempts

    def fails_over(self, reason: OutcomeReason | None) -> bool:
        return reason is not None and reason.value in self.failover_on

    def delay_after(self, tries: int, retry_after_seconds: float | None = None) -> float:
        """Seconds to wait after failed try number `tries` (1-based) on a destination; a provider's
        Retry-After wins if longer."""
        delay = self.initial_delay_seconds * self.backoff_multiplier ** (tries - 1)
        delay = min(delay, self.max_delay_seconds)
        if retry_after_seconds is not None:
            delay = max(delay, min(retry_after_seconds, self.max_delay_seconds))
        return delay


# A campaign without a retry policy: one try, no failover.
NO_RETRIES = RetryPolicy(
    max_attempts=1, initial_delay_seconds=1, backoff_multiplier=1, max_delay_seconds=1, retry_on=[], failover_on=[]
)
