"""Checking uploaded recipient rows: E.164 numbers, per-recipient variables, duplicates."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

MAX_BATCH = 10_000
MAX_PARAMS_BYTES = 4096  # a recipient's params, as compact UTF-8 JSON

# What a DynamoDB number can be: zero, or 1e-130 to 9.99...e125 in magnitude, with at most 38 digits.
DYNAMODB_DIGITS = 38
DYNAMODB_SMALLEST = Decimal("1E-130")
DYNAMODB_LARGEST = Decimal("9.9999999999999999999999999999999999999E+125")
LARGEST_INT = 10**DYNAMODB_DIGITS - 1
LARGEST_FLOAT = math.nextafter(float(DYNAMODB_LARGEST), 0.0)  # the float nearest 1e126 rounds up to 1e126

# The JSON schemas state the bounds; tiny magnitudes (below 1e-130) are refused by `number_problem`.
Param = (
    str
    | Annotated[int, WithJsonSchema({"type": "integer", "minimum": -LARGEST_INT, "maximum": LARGEST_INT})]
    | Annotated[float, WithJsonSchema({"type": "number", "minimum": -LARGEST_FLOAT, "maximum": LARGEST_FLOAT})]
    | bool
)


def number_problem(value: int | float) -> str | None:
    """Why DynamoDB could not store this number (the store writes floats as Decimal(str(value))), or None."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return "is not a finite number"
        number = Decimal(repr(value))
    else:
        number = Decimal(value)
    if number == 0:
        return None
    if len(number.as_tuple().digits) > DYNAMODB_DIGITS:
        return f"has more than {DYNAMODB_DIGITS} digits"
    if not DYNAMODB_SMALLEST <= abs(number) <= DYNAMODB_LARGEST:
        return "is out of range: numbers are 0 or 1e-130 to 9.99e125 in magnitude"
    return None


class RecipientRow(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    phone: str = Field(description="E.164 number, e.g. +447700900123.", max_length=32)
    params: dict[str, Param] = Field(
        default_factory=dict,
        description=(
            "Template variables for this recipient: at most 4 KB (4,096 bytes) as compact UTF-8 JSON; names not "
            "empty; numbers finite, 0 or 1e-130 to 9.99e125 in magnitude, at most 38 digits. A row whose params "
            "break these is rejected as invalid_row."
        ),
    )

    @field_validator("params")
    @classmethod
    def _storable(cls, params: dict[str, str | int | float | bool]) -> dict[str, str | int | float | bool]:
        for name, value in params.items():
            if not name:
                raise PydanticCustomError("param_name", "a param name must not be empty")
            if isinstance(value, int | float) and not isinstance(value, bool):
                problem = number_problem(value)
                if problem is not None:
                    raise PydanticCustomError("param_number", "'{name}' {problem}", {"name": name, "problem": problem})
        size = len(json.dumps(params, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
        if size > MAX_PARAMS_BYTES:
            raise PydanticCustomError(
                "params_too_large",
                "{size} bytes as JSON; at most {limit} allowed",
                {"size": size, "limit": MAX_PARAMS_BYTES},
            )
        return params


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
