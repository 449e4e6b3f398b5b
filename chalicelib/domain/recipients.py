"""Checking uploaded recipient rows: E.164 numbers, per-recipient variables, duplicates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_BATCH = 10_000
Param = str | int | float | bool


class RecipientRow(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    phone: str = Field(description="E.164 number, e.g. +447700900123.", max_length=32)
    params: dict[str, Param] = Field(default_factory=dict, description="Template variables for this recipient.")


@dataclass(frozen=True)
class RejectedRow:
    index: int
    reason: str  # invalid_phone | duplicate | invalid_row
    detail: str
    phone: str | None = None


@dataclass(frozen=True)
class ValidRow:
    index: int
    phone: str
    params: dict[str, Param]


@dataclass
class CheckedBatch:
    valid: list[ValidRow] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)


def normalize_e164(raw: str) -> str:
    """The number in E.164, or ValueError saying why it is not a valid one."""
    if not raw.startswith("+"):
        raise ValueError("must be in E.164 format, starting with '+' and the country code")
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {exc._msg}") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_rows(rows: list[Any]) -> CheckedBatch:
    """Split a batch into valid rows and rejected ones (with their index); duplicates inside it count once."""
    batch = CheckedBatch()
    seen: set[str] = set()
    for index, raw in enumerate(rows):
        try:
            row = RecipientRow.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "row"
            batch.rejected.append(RejectedRow(index, "invalid_row", f"{where}: {first['msg']}"))
            continue
        try:
            phone = normalize_e164(row.phone.strip())
        except ValueError as exc:
            batch.rejected.append(RejectedRow(index, "invalid_phone", str(exc), row.phone))
            continue
        if phone in seen:
            batch.rejected.append(RejectedRow(index, "duplicate", "appears earlier in this batch", phone))
            continue
        seen.add(phone)
        batch.valid.append(ValidRow(index, phone, row.params))
    return batch
