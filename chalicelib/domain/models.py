"""The API's request and response bodies; the OpenAPI document is generated from these."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chalicelib.domain.campaign import CampaignStatus
from chalicelib.domain.delivery import DeliveryState
from chalicelib.domain.recipients import MAX_BATCH
from chalicelib.domain.retry import RetryPolicy
from chalicelib.domain.template import TemplateError, compile_template


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)


# --- accounts -------------------------------------------------------------------------------


class AccountCreate(Strict):
    name: str = Field(min_length=1, max_length=200)


class AccountCreated(BaseModel):
    id: str
    name: str
    api_key: str = Field(description="Shown once; only its hash is stored.")


# --- lists ----------------------------------------------------------------------------------


class ListCreate(Strict):
    name: str = Field(min_length=1, max_length=200)


class RecipientList(BaseModel):
    id: str
    name: str
    recipient_count: int
    created_at: str


class RecipientsAdd(Strict):
    recipients: list[Any] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="Up to 10,000 rows of {phone, params}; bad rows are skipped and reported, not fatal.",
    )


class RejectedRecipient(BaseModel):
    index: int = Field(description="Position of the row in the request's `recipients` array.")
    reason: Literal["invalid_phone", "duplicate", "invalid_row"]
    detail: str
    phone: str | None = None


class RecipientsAdded(BaseModel):
    received: int
    accepted: int
    invalid: int
    duplicates: int
    rejected: list[RejectedRecipient]
    recipient_count: int = Field(description="Recipients in the list after this batch.")


class ListRecipient(BaseModel):
    phone: str
    params: dict[str, Any]
    added_at: str


# --- campaigns ------------------------------------------------------------------------------


class CampaignCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    list_id: str = Field(min_length=1, max_length=64)
    channel: Literal["sms"] = "sms"
    sender: str = Field(min_length=1, max_length=20, description="Alphanumeric sender id or a number.")
    template: str = Field(
        min_length=1, max_length=1600, description="Liquid template; recipient params are its variables."
    )
    rate_per_second: float = Field(
        10, ge=0.01, le=1000, description="Messages per second for this campaign, 0.01 to 1000."
    )
    retry_policy: RetryPolicy | None = Field(None, description="Omit for no retries: one attempt each.")

    @field_validator("template")
    @classmethod
    def _template_compiles(cls, value: str) -> str:
        try:
            compile_template(value)
        except TemplateError as exc:
            raise ValueError(f"not a valid Liquid template: {exc}") from exc
        return value


class Counters(BaseModel):
    """total = queued + in_flight + succeeded + failed + unknown, at every read."""

    total: int = Field(description="Recipients of the campaign: the list as it stood at start.")
    queued: int = Field(description="Not sent yet: waiting for release, for a retry, or parked by a pause.")
    in_flight: int = Field(description="Being sent now.")
    succeeded: int = Field(description="Accepted by the provider.")
    failed: int = Field(description="Failed for good: a permanent error, retries exhausted, or dead-lettered.")
    unknown: int = Field(
        description="The send may have happened but no answer came back (a timeout after sending, a worker "
        "that stopped); not resent, since the channel takes no idempotency key."
    )


class Campaign(BaseModel):
    id: str
    name: str
    list_id: str
    channel: str
    sender: str
    template: str
    rate_per_second: float
    retry_policy: RetryPolicy | None
    status: CampaignStatus
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    counters: Counters


class Delivery(BaseModel):
    phone: str
    state: DeliveryState
    attempts: int
    provider_message_id: str | None = None
    last_error: str | None = None
    next_attempt_at: str | None = None
    updated_at: str


class Recount(BaseModel):
    """Counters rebuilt from the deliveries themselves."""

    before: Counters = Field(description="The counters as they were.")
    after: Counters = Field(description="The counters as the deliveries say.")
    drift: dict[str, int] = Field(description="after - before, for each counter that differed.")
    applied: bool = Field(
        description="False when the campaign kept changing during the recount; `after` was then not stored."
    )


Item = TypeVar("Item", bound=BaseModel)


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    next_page_token: str | None = Field(None, description="Pass back as `page_token` for the next page.")
