"""When a transient failure is tried again, and when it stops being tried."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RetryPolicy(BaseModel):
    """Exponential backoff for transient failures (throttling, provider 5xx, timeouts)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_attempts: int = Field(3, strict=False, ge=1, le=10, description="Attempts in all, the first one included.")
    initial_delay_seconds: float = Field(30, ge=1, le=86_400, description="Wait before the second attempt.")
    backoff_multiplier: float = Field(2.0, ge=1, le=10, description="Each later wait is this many times longer.")
    max_delay_seconds: float = Field(3_600, ge=1, le=86_400, description="No wait is longer than this.")

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> RetryPolicy:
        if self.max_delay_seconds < self.initial_delay_seconds:
            raise ValueError("max_delay_seconds must be at least initial_delay_seconds")
        return self

    def allows_attempt_after(self, attempt: int) -> bool:
        return attempt < self.max_attempts

    def delay_after(self, attempt: int, retry_after_seconds: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based); a provider's Retry-After wins if longer."""
        delay = self.initial_delay_seconds * self.backoff_multiplier ** (attempt - 1)
        delay = min(delay, self.max_delay_seconds)
        if retry_after_seconds is not None:
            delay = max(delay, min(retry_after_seconds, self.max_delay_seconds))
        return delay


NO_RETRIES = RetryPolicy(max_attempts=1, initial_delay_seconds=1, backoff_multiplier=1, max_delay_seconds=1)
