"""A list's recipients: an id, up to five typed destinations, typed attributes, a locale and a time zone.

Rows come from JSON requests and from uploaded files; both go through `check_rows`, which normalises
destinations (E.164 numbers with phonenumbers, email syntax with email-validator, SIP URIs), derives a
missing id from the first destination, and reports every rejected row with its index, field and reason.
The shorthand `{"phone", "params"}` of the first API version stays accepted.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

MAX_BATCH = 10_000
MAX_DESTINATIONS = 5
MAX_ID_LENGTH = 128
MAX_PARAMS_BYTES = 4096  # a recipient's attributes, as compact UTF-8 JSON

# What a DynamoDB number can be: zero, or 1e-130 to 9.99...e125 in magnitude, with at most 38 digits.
DYNAMODB_DIGITS = 38
DYNAMODB_SMALLEST = Decimal("1E-130")
DYNAMODB_LARGEST = Decimal("9.9999999999999999999999999999999999999E+125")
LARGEST_INT = 10**DYNAMODB_DIGITS - 1
LARGEST_FLOAT = math.nextafter(float(DYNAMODB_LARGEST), 0.0)  # the float nearest 1e126 rounds up to 1e126

# The JSON schemas state the bounds; tiny magnitudes (below 1e-130) are refused by `number_problem`.
# A date is written as an ISO 8601 string (YYYY-MM-DD); uploads with a column typed `date` check it.
Param = (
    str
    | Annotated[int, WithJsonSchema({"type": "integer", "minimum": -LARGEST_INT, "maximum": LARGEST_INT})]
    | Annotated[float, WithJsonSchema({"type": "number", "minimum": -LARGEST_FLOAT, "maximum": LARGEST_FLOAT})]
    | bool
)

# Characters a phone number may be written with besides digits; a letter is refused, not read as a keypad digit.
_PHONE_PUNCTUATION = re.compile(r"^\+?[0-9 ()./\-]+$")
_SIP_URI = re.compile(r"^sips?:[^@\s:;]+@[A-Za-z0-9.\-]+(:[0-9]{1,5})?$", re.IGNORECASE)
LOCALE_PATTERN = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$"
_LOCALE = re.compile(LOCALE_PATTERN)
# A page-scoped id as Facebook hands it out and the Messages API takes it (`ToId`: 1 to 50 characters): digits.
# A Facebook page id (`FromId`) has the same shape.
MESSENGER_ID = re.compile(r"^[0-9]{1,50}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class DestinationType(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    WHATSAPP = "whatsapp"
    VOICE = "voice"
    MESSENGER = "messenger"  # a Facebook page-scoped id (PSID): digits, as the page's Messenger knows the person


# Which destination types each channel can send to, in order of preference.
CHANNEL_DESTINATIONS: dict[str, tuple[DestinationType, ...]] = {
    "sms": (DestinationType.PHONE,),
    "whatsapp": (DestinationType.WHATSAPP, DestinationType.PHONE),
    "mms": (DestinationType.PHONE,),
    "viber_service": (DestinationType.PHONE,),
    "messenger": (DestinationType.MESSENGER,),
    "voice": (DestinationType.VOICE, DestinationType.PHONE),
    "email": (DestinationType.EMAIL,),
    # An HTTP action reaches the recipient however the endpoint does: any destination, in the recipient's order.
    "http": (),
}


def recipient_fields(recipient: Recipient) -> set[str]:
    """What a list counts of a recipient (the list's `field_counts`): `attributes.<name>` for each attribute
    it has, and `attributes.<name>:<kind>` for its kind (number, text, boolean, list, object), and
    `destinations.<type>` for each type of destination it has."""
    present = {name: value for name, value in recipient.attributes.items() if value is not None}
    return (
        {f"attributes.{name}" for name in present}
        | {f"attributes.{name}:{attribute_kind(value)}" for name, value in present.items()}
        | {f"destinations.{d.type.value}" for d in recipient.destinations}
    )


def attribute_kind(value: Any) -> str:
    """The kind of an attribute's value, as conditions and the list's counts name it."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return "list" if isinstance(value, list) else "object"


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


def storable_attributes(params: dict[str, Any]) -> dict[str, Any]:
    for name, value in params.items():
        if not name:
            raise PydanticCustomError("param_name", "an attribute name must not be empty")
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


ATTRIBUTES_DESCRIPTION = (
    "Template variables and segmentation data for this recipient: strings, numbers, booleans, dates as "
    "YYYY-MM-DD strings. At most 4 KB (4,096 bytes) as compact UTF-8 JSON; names not empty; numbers finite, "
    "0 or 1e-130 to 9.99e125 in magnitude, at most 38 digits. A row that breaks these is rejected as invalid_row."
)


class DestinationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: DestinationType = Field(
        strict=False,
        description="phone (E.164 or national with default_region), email, whatsapp, voice, messenger.",
    )
    address: str = Field(
        min_length=1,
        max_length=320,
        description="A phone number, an email address, for voice a SIP URI, for messenger the person's page-scoped "
        "id (PSID: the digits Facebook gives your page for them, at most 50).",
    )


class ListItemIn(BaseModel):
    """A recipient as uploaded. `id` is the customer's own (a CRM id, Courier's user_id); without one, the
    normalised first destination is the id. Items are unique per list by id."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str | None = Field(
        None, min_length=1, max_length=MAX_ID_LENGTH, description="Your id for this recipient, unique in the list."
    )
    destinations: list[DestinationIn] = Field(
        min_length=1, max_length=MAX_DESTINATIONS, description="Up to 5 ways to reach the recipient, first preferred."
    )
    attributes: dict[str, Param] = Field(default_factory=dict, description=ATTRIBUTES_DESCRIPTION)
    locale: str | None = Field(None, max_length=35, description="BCP 47 language tag, e.g. en-GB.")
    timezone: str | None = Field(None, max_length=64, description="IANA time zone, e.g. Europe/London.")

    @field_validator("id")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and (_CONTROL.search(value) or value != value.strip()):
            raise PydanticCustomError("id", "must have no control characters or surrounding spaces")
        return value

    @field_validator("attributes")
    @classmethod
    def _attributes_storable(cls, value: dict[str, Any]) -> dict[str, Any]:
        return storable_attributes(value)

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str | None) -> str | None:
        if value is not None and not _LOCALE.match(value):
            raise PydanticCustomError("locale", "not a BCP 47 language tag such as en or pt-BR")
        return value.replace("_", "-") if value else value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None and not is_time_zone(value):
            raise PydanticCustomError("timezone", "not an IANA time zone such as Europe/London")
        return value


class RecipientRow(BaseModel):
    """The first API version's row: one phone number and its template variables."""

    model_config = ConfigDict(extra="forbid", strict=True)

    phone: str = Field(description="E.164 number, e.g. +447700900123.", max_length=32)
    params: dict[str, Param] = Field(default_factory=dict, description=ATTRIBUTES_DESCRIPTION)

    @field_validator("params")
    @classmethod
    def _params_storable(cls, value: dict[str, Any]) -> dict[str, Any]:
        return storable_attributes(value)


def is_time_zone(name: str) -> bool:
    if name not in _zones():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


_ZONES: set[str] = set()


def _zones() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones())
    return _ZONES


@dataclass(frozen=True)
class Destination:
    type: DestinationType
    address: str  # normalised: E.164, lower-cased email domain, SIP URI

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type.value, "address": self.address}


@dataclass(frozen=True)
class Recipient:
    """A checked, normalised recipient."""

    id: str
    destinations: tuple[Destination, ...]
    attributes: dict[str, Any] = field(default_factory=dict)
    locale: str | None = None
    timezone: str | None = None

    def destinations_for(self, channel: str) -> list[tuple[int, Destination]]:
        """The destinations a channel sends to, in the order they are tried (the channel's preferred type
        first, then the recipient's order), each with its index among the recipient's destinations."""
        wanted_types = CHANNEL_DESTINATIONS.get(channel)
        if wanted_types == ():
            return list(enumerate(self.destinations))
        return [
            (index, destination)
            for wanted in wanted_types or ()
            for index, destination in enumerate(self.destinations)
            if destination.type == wanted
        ]

    def destination_for(self, channel: str) -> tuple[int, Destination] | None:
        """The destination a channel sends to first, or None."""
        found = self.destinations_for(channel)
        return found[0] if found else None

    def destination_after(self, channel: str, index: int) -> tuple[int, Destination] | None:
        """The destination tried after the one at `index` (failover), or None when it was the last."""
        order = self.destinations_for(channel)
        at = next((n for n, (i, _) in enumerate(order) if i == index), None)
        return order[at + 1] if at is not None and at + 1 < len(order) else None

    def to_dict(self) -> dict[str, Any]:
        """The compact form kept in list items, chunks and parked deliveries."""
        out: dict[str, Any] = {"id": self.id, "destinations": [d.to_dict() for d in self.destinations]}
        if self.attributes:
            out["attributes"] = self.attributes
        if self.locale:
            out["locale"] = self.locale
        if self.timezone:
            out["timezone"] = self.timezone
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipient:
        return cls(
            id=str(data["id"]),
            destinations=tuple(
                Destination(DestinationType(d["type"]), str(d["address"])) for d in data.get("destinations", [])
            ),
            attributes=dict(data.get("attributes") or {}),
            locale=data.get("locale"),
            timezone=data.get("timezone"),
        )


class AddressError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def normalize_phone(raw: str, default_region: str | None = None) -> str:
    """The number in E.164, or AddressError saying why it is not a valid one. Without a default region the
    number must start with '+' and its country code; letters are refused (never read as keypad digits)."""
    text = raw.strip()
    if not _PHONE_PUNCTUATION.match(text):
        raise AddressError("invalid_phone", "not a phone number: only digits, spaces, +, (, ), ., / and - are allowed")
    if not text.startswith("+") and default_region is None:
        raise AddressError(
            "invalid_phone", "must be in E.164 format, starting with '+' and the country code (or set default_region)"
        )
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException as exc:
        raise AddressError("invalid_phone", f"not a phone number: {exc._msg}") from exc
    if not phonenumbers.is_valid_number(number):
        raise AddressError("invalid_phone", "not a valid number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_e164(raw: str) -> str:
    """The number in E.164, or ValueError saying why it is not a valid one."""
    return normalize_phone(raw)


def normalize_email(raw: str) -> str:
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise AddressError("invalid_email", f"not a valid email address: {exc}") from exc


def normalize_address(kind: DestinationType, raw: str, default_region: str | None = None) -> str:
    if kind == DestinationType.EMAIL:
        return normalize_email(raw)
    if kind == DestinationType.VOICE and raw.strip().lower().startswith(("sip:", "sips:")):
        if not _SIP_URI.match(raw.strip()):
            raise AddressError("invalid_address", "not a SIP URI such as sip:agent@example.com")
        return raw.strip()
    if kind == DestinationType.MESSENGER:
        return normalize_page_scoped_id(raw)
    return normalize_phone(raw, default_region)


def normalize_page_scoped_id(raw: str) -> str:
    """A Messenger page-scoped id (PSID), or AddressError: digits only, 1 to 50 (the Messages API's `ToId`); a
    phone number (with '+'), a user name or a profile URL is not one."""
    text = raw.strip()
    if not MESSENGER_ID.match(text):
        raise AddressError(
            "invalid_address",
            "not a Messenger page-scoped id (PSID): the digits your page knows the person by, 50 at most",
        )
    return text


@dataclass(frozen=True)
class RejectedRow:
    index: int
    reason: str  # invalid_phone | invalid_email | invalid_address | invalid_row | duplicate
    detail: str
    field: str | None = None
    id: str | None = None


@dataclass(frozen=True)
class ValidRow:
    index: int
    recipient: Recipient

    @property
    def id(self) -> str:
        return self.recipient.id


@dataclass
class CheckedBatch:
    valid: list[ValidRow] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)


def _location(loc: tuple[int | str, ...], raw: Any) -> str:
    """The error's path in the row as written, e.g. destinations[1].address (pydantic's tags for the member
    of a union, such as `str`, are not part of the row and are left out)."""
    out, here = "", raw
    for part in loc:
        inside = isinstance(here, dict) and part in here
        inside |= isinstance(here, list) and isinstance(part, int) and 0 <= part < len(here)
        if inside:
            here = here[part]
        elif here is not raw or part not in ListItemIn.model_fields:
            break
        else:
            here = None
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def check_row(raw: Any, default_region: str | None = None) -> Recipient:
    """One row as a normalised Recipient, or RejectedRow-ready errors: raises RowError."""
    shorthand = isinstance(raw, dict) and "phone" in raw and "destinations" not in raw
    model: type[BaseModel] = RecipientRow if shorthand else ListItemIn
    try:
        row = model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _location(tuple(first["loc"]), raw) or "row"
        raise RowError("invalid_row", where, f"{where}: {first['msg']}") from None
    if isinstance(row, RecipientRow):
        try:
            phone = normalize_address(DestinationType.PHONE, row.phone, default_region)
        except AddressError as exc:
            raise RowError(exc.reason, "phone", f"phone: {exc}", row.phone) from None
        return Recipient(id=phone, destinations=(Destination(DestinationType.PHONE, phone),), attributes=row.params)
    assert isinstance(row, ListItemIn)
    destinations = []
    for i, given in enumerate(row.destinations):
        try:
            destinations.append(Destination(given.type, normalize_address(given.type, given.address, default_region)))
        except AddressError as exc:
            where = f"destinations[{i}].address"
            raise RowError(exc.reason, where, f"{where}: {exc}", row.id) from None
    return Recipient(
        id=row.id if row.id is not None else destinations[0].address,
        destinations=tuple(destinations),
        attributes=row.attributes,
        locale=row.locale,
        timezone=row.timezone,
    )


class RowError(ValueError):
    def __init__(self, reason: str, field_name: str, detail: str, rid: str | None = None) -> None:
        super().__init__(detail)
        self.reason, self.field, self.detail, self.id = reason, field_name, detail, rid

    def at(self, index: int) -> RejectedRow:
        return RejectedRow(index, self.reason, self.detail, self.field, self.id)


def check_rows(rows: list[Any], default_region: str | None = None, first_index: int = 0) -> CheckedBatch:
    """Split a batch into valid rows and rejected ones (with their index); an id seen earlier in the batch
    is a duplicate."""
    batch = CheckedBatch()
    seen: set[str] = set()
    for index, raw in enumerate(rows, start=first_index):
        try:
            recipient = check_row(raw, default_region)
        except RowError as exc:
            batch.rejected.append(exc.at(index))
            continue
        if recipient.id in seen:
            batch.rejected.append(RejectedRow(index, "duplicate", "appears earlier in this batch", "id", recipient.id))
            continue
        seen.add(recipient.id)
        batch.valid.append(ValidRow(index, recipient))
    return batch


def iso_date(raw: str) -> str:
    """A date cell as YYYY-MM-DD, or ValueError."""
    return date.fromisoformat(raw.strip()).isoformat()
