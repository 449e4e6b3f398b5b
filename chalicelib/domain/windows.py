"""Send windows and quiet hours: when a recipient may be sent to, in the recipient's own local time.

A window is a daily span of local wall-clock time (start inclusive, end exclusive) on some days of the week,
less blackout dates. A recipient is in one time zone (its own `timezone`), or in several when only its phone
number is known and the number's region spans several zones: then only the instants open in every zone count.
Everything is computed on aware UTC instants with zoneinfo, so DST gaps, repeated hours and half-hour shifts
(Lord Howe) fall out of the time zone data instead of clock arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as phone_zones
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chalicelib.domain.recipients import Recipient, is_time_zone

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_BLACKOUT_DATES = 100
SEARCH_HORIZON = timedelta(days=366)

# tz data never changes a zone's offset twice within this step, so sampling at it finds every transition.
_SAMPLE_STEP = timedelta(hours=6)
_UNKNOWN_ZONE = "Etc/Unknown"  # what phonenumbers answers for a number it cannot place


class SendWindow(BaseModel):
    """The local hours, days and dates in which a campaign may send, applied in each recipient's time zone."""

    model_config = ConfigDict(extra="forbid", strict=True)

    start: time = Field(
        strict=False,
        description="Local time the window opens each allowed day, HH:MM (inclusive).",
        examples=["08:00"],
    )
    end: time = Field(
        strict=False,
        description="Local time the window closes the same day, HH:MM (exclusive); must be after `start`. A window "
        "crossing midnight (e.g. 22:00 to 06:00) is not supported.",
        examples=["21:00"],
    )
    days: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS),
        description="Days of the week the window opens, in the recipient's local time; all seven by default.",
        json_schema_extra={"minItems": 1, "uniqueItems": True},
    )
    blackout_dates: list[Annotated[date, Field(strict=False)]] = Field(
        default_factory=list,
        max_length=MAX_BLACKOUT_DATES,
        description="Local dates (YYYY-MM-DD) on which the window stays closed all day, e.g. public holidays; "
        "at most 100.",
        json_schema_extra={"uniqueItems": True},
    )

    @field_validator("start", "end")
    @classmethod
    def _local_minutes(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("must be a local time without an offset, HH:MM")
        if value.second or value.microsecond:
            raise ValueError("must be whole minutes, HH:MM")
        return value

    @field_validator("days")
    @classmethod
    def _days_named_once(cls, value: list[Weekday]) -> list[Weekday]:
        if not value:
            raise ValueError("days must name at least one day")
        repeated = sorted({day for day in value if value.count(day) > 1}, key=WEEKDAYS.index)
        if repeated:
            raise ValueError(f"days must not repeat: {', '.join(repeated)}")
        return value

    @field_validator("blackout_dates")
    @classmethod
    def _dates_named_once(cls, value: list[date]) -> list[date]:
        repeated = sorted({day for day in value if value.count(day) > 1})
        if repeated:
            raise ValueError(f"blackout_dates must not repeat: {', '.join(day.isoformat() for day in repeated)}")
        return value

    @model_validator(mode="after")
    def _end_after_start(self) -> SendWindow:
        if self.end <= self.start:
            raise ValueError("end must be after start (a window crossing midnight is not supported)")
        return self

    def opens_on(self, day: date) -> bool:
        """Whether the window opens at all on this local date."""
        return WEEKDAYS[day.weekday()] in self.days and day not in self.blackout_dates


def default_window(category: Literal["marketing", "transactional"]) -> SendWindow | None:
    """The window a campaign gets when it names none: marketing 08:00-21:00 every day (the TCPA's calling hours);
    transactional messages are not held back."""
    if category == "marketing":
        return SendWindow(start=time(8, 0), end=time(21, 0))
    return None


@dataclass
class Openings:
    """A campaign's window applied to its recipients: whether each may be sent now, and if not, when. The
    next opening is searched once per set of zones (and again once it has passed)."""

    window: SendWindow | None
    campaign_zone: str
    found: dict[tuple[str, ...], float] = field(default_factory=dict)

    @classmethod
    def of(cls, campaign: dict[str, Any]) -> Openings:
        """The campaign's window, or its category's default."""
        named = campaign.get("window")
        window = SendWindow.model_validate(named) if named else default_window(campaign.get("category", ""))
        return cls(window, campaign.get("timezone") or "UTC")

    def wait(self, recipient: Recipient, address: str, now: datetime) -> float | None:
        """None when the recipient's window is open at `now`; else when it opens (epoch s; inf: never)."""
        if self.window is None:
            return None
        zones = recipient_zones(recipient.timezone, address if address.startswith("+") else None, self.campaign_zone)
        opening = self.found.get(zones)
        if opening is not None and opening > now.timestamp():
            return opening  # closed until then, as found before
        if is_open(self.window, zones, now):
            return None
        found = next_open(self.window, zones, now)
        opening = found.timestamp() if found else math.inf
        self.found[zones] = opening
        return opening


def validate_zone(name: str) -> str:
    """The IANA time zone name unchanged, or ValueError; usable as a pydantic validator."""
    if not is_time_zone(name):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as Europe/London")
    return name


def recipient_zones(timezone: str | None, phone_e164: str | None, campaign_zone: str) -> tuple[str, ...]:
    """The zones a recipient's window is evaluated in: its own time zone; else every zone its phone number's
    region spans; else the campaign's zone."""
    if timezone:
        return (timezone,)
    if phone_e164:
        try:
            number = phonenumbers.parse(phone_e164, None)
        except phonenumbers.NumberParseException:
            number = None
        if number is not None:
            zones = tuple(
                zone
                for zone in phone_zones.time_zones_for_number(number)
                if zone != _UNKNOWN_ZONE and is_time_zone(zone)
            )
            if zones:
                return zones
    return (campaign_zone,)


def is_open(window: SendWindow, zones: tuple[str, ...], at: datetime) -> bool:
    """Whether the window is open at the instant `at` (aware) in every one of the zones."""
    _check_zones(zones)
    instant = _utc(at)
    for zone in zones:
        local = instant.astimezone(ZoneInfo(zone))
        if not (window.opens_on(local.date()) and window.start <= local.time() < window.end):
            return False
    return True


def next_open(window: SendWindow, zones: tuple[str, ...], at: datetime) -> datetime | None:
    """The earliest aware UTC instant at or after `at` at which the window is open in every zone, or None when
    there is none within 366 days."""
    _check_zones(zones)
    start = _utc(at)
    horizon = start + SEARCH_HORIZON
    streams = [_open_intervals(window, ZoneInfo(zone), start, horizon) for zone in zones]
    current = [next(stream, None) for stream in streams]
    # Walk the sorted open intervals of all zones together: the first overlap's start is the answer.
    while True:
        if any(interval is None for interval in current):
            return None
        intervals = [interval for interval in current if interval is not None]
        latest_start = max(opens for opens, _ in intervals)
        first_close = min(range(len(intervals)), key=lambda index: intervals[index][1])
        if latest_start < intervals[first_close][1]:
            return latest_start
        current[first_close] = next(streams[first_close], None)


def _open_intervals(
    window: SendWindow, zone: ZoneInfo, start: datetime, horizon: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """The window's open spans [opens, closes) in one zone between start and horizon, in order, as UTC instants."""
    pending: tuple[datetime, datetime] | None = None
    for piece_start, piece_end, offset in _constant_offset_pieces(zone, start, horizon):
        # Within a piece wall time is UTC + offset, so the window's local span maps back by subtracting it.
        first_day = (piece_start + offset).date()
        last_day = (piece_end + offset - timedelta(microseconds=1)).date()
        day = first_day
        while day <= last_day:
            if window.opens_on(day):
                opens = max(piece_start, datetime.combine(day, window.start, UTC) - offset)
                closes = min(piece_end, datetime.combine(day, window.end, UTC) - offset)
                if opens < closes:
                    if pending is not None and pending[1] == opens:
                        pending = (pending[0], closes)
                    else:
                        if pending is not None:
                            yield pending
                        pending = (opens, closes)
            day += timedelta(days=1)
    if pending is not None:
        yield pending


def _constant_offset_pieces(
    zone: ZoneInfo, start: datetime, horizon: datetime
) -> Iterator[tuple[datetime, datetime, timedelta]]:
    """[start, horizon) cut into consecutive pieces in which the zone's UTC offset does not change."""
    piece_start = start
    offset = _offset(zone, start)
    while piece_start < horizon:
        step_end = min(piece_start + _SAMPLE_STEP, horizon)
        step_offset = _offset(zone, step_end)
        if step_offset == offset:
            yield piece_start, step_end, offset
            piece_start = step_end
            continue
        change = _transition(zone, piece_start, step_end, offset)
        yield piece_start, change, offset
        piece_start, offset = change, _offset(zone, change)


def _transition(zone: ZoneInfo, before: datetime, after: datetime, old_offset: timedelta) -> datetime:
    """The first whole second in (before, after] at which the zone leaves old_offset; tz data changes on seconds."""
    low, high = math.floor(before.timestamp()), math.ceil(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(zone, datetime.fromtimestamp(middle, UTC)) == old_offset:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always knows its offset
    return offset


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("at must be an aware datetime")
    return at.astimezone(UTC)


def _check_zones(zones: tuple[str, ...]) -> None:
    if not zones:
        raise ValueError("zones must name at least one time zone")
