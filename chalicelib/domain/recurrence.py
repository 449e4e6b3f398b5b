"""Recurring campaigns: EventBridge Scheduler's `cron()` and `rate()` expressions, checked before a schedule
is made (a 422 naming the field instead of a failed CreateSchedule) and evaluated for the next run.

EventBridge's cron has six fields, `minutes hours day-of-month month day-of-week year`, with `?` in exactly
one of day-of-month and day-of-week, days of the week 1-7 for SUN-SAT (or their names), and `L`, `W` and `#`.
cronsim evaluates standard five-field cron (days of the week 0-6, SUN = 0) with the same `L`, `W` and `#`,
in an aware datetime's zone, DST-correct; the expression is translated to it and the year checked here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_YEAR = re.compile(r"^(\*|\d{4}(-\d{4})?(/\d+)?)(,\d{4}(-\d{4})?)*$")
_DAY_NUMBER = re.compile(r"(?<![#\d])([1-7])(?![\d])")
# How many occurrences ahead are looked at (the first is what the API shows).
SEARCH_OCCURRENCES = 2000
MAX_YEAR = 2199  # EventBridge's last year


class InvalidExpression(ValueError):
    """Why an expression is not one EventBridge Scheduler takes (the message is the reason shown)."""


@dataclass(frozen=True)
class Expression:
    """A parsed recurrence: a rate in seconds, or a five-field cron for cronsim with the years it runs in."""

    rate_seconds: int | None = None
    cron: str | None = None
    years: str = "*"

    def occurrences(self, zone: str, after: datetime, anchor: datetime) -> Iterator[datetime]:
        """Occurrences after `after`, in `zone`; a rate counts its periods from `anchor` (the start date)."""
        if self.rate_seconds is not None:
            step = timedelta(seconds=self.rate_seconds)
            periods = 0 if after < anchor else int((after - anchor).total_seconds() // self.rate_seconds) + 1
            return (anchor + (periods + n) * step for n in range(SEARCH_OCCURRENCES))
        assert self.cron is not None
        return islice(self._cron_times(after.astimezone(ZoneInfo(zone))), SEARCH_OCCURRENCES)

    def _cron_times(self, local: datetime) -> Iterator[datetime]:
        """cronsim's times in the allowed years: from the first allowed year on, jumping over the years the
        field leaves out rather than walking them minute by minute."""
        assert self.cron is not None
        start = local
        while (year := _next_year(self.years, start.year)) is not None:
            if year > start.year:
                start = datetime(year, 1, 1, tzinfo=start.tzinfo) - timedelta(minutes=1)
            for moment in CronSim(self.cron, start):
                if moment.year > MAX_YEAR:
                    return
                if not _in_years(moment.year, self.years):
                    start = moment
                    break
                yield moment
            else:
                return


def parse(expression: str) -> Expression:
    """The expression as EventBridge Scheduler reads it; InvalidExpression says why it is not one."""
    expression = expression.strip()
    if match := _RATE.match(expression):
        value, unit = int(match.group(1)), match.group(2)
        if value < 1:
            raise InvalidExpression("a rate must be at least 1")
        if (value == 1) != (not unit.endswith("s")):
            raise InvalidExpression(f"use `{unit.rstrip('s')}` for 1 and `{unit.rstrip('s')}s` above 1")
        return Expression(rate_seconds=value * RATE_UNITS[unit.rstrip("s")])
    if not (match := _CRON.match(expression)):
        raise InvalidExpression("must be `cron(minutes hours day-of-month month day-of-week year)` or `rate(n unit)`")
    fields = match.group(1).split()
    if len(fields) != 6:
        raise InvalidExpression(f"a cron expression has 6 fields, this one has {len(fields)}")
    minutes, hours, day_of_month, month, day_of_week, years = fields
    if (day_of_month == "?") == (day_of_week == "?"):
        raise InvalidExpression("exactly one of day-of-month and day-of-week must be `?`")
    if not _YEAR.match(years) or any(int(y) > MAX_YEAR for y in re.findall(r"\d{4}", years)):
        raise InvalidExpression(f"the year field `{years}` is not `*`, a year to {MAX_YEAR}, a range or a list of them")
    five = " ".join([minutes, hours, "*" if day_of_month == "?" else day_of_month, month, _week_days(day_of_week)])
    try:
        CronSim(five, datetime(2026, 1, 1))
    except CronSimError as exc:
        raise InvalidExpression(f"not a valid cron expression: {exc}") from exc
    return Expression(cron=five, years=years)


def next_occurrence(expression: str, zone: str, after: datetime, anchor: datetime) -> datetime | None:
    """The first occurrence after `after` (None if there is none left, e.g. its years are past)."""
    return next(iter(parse(expression).occurrences(zone, after, anchor)), None)


def _week_days(field: str) -> str:
    """EventBridge's day-of-week numbers (1-7, SUN-SAT) as cronsim's (0-6); `?` is any day."""
    if field == "?":
        return "*"
    return _DAY_NUMBER.sub(lambda m: str(int(m.group(1)) - 1), field)


def _next_year(years: str, year: int) -> int | None:
    """The first year from `year` on that the field allows (None after MAX_YEAR)."""
    return next((y for y in range(year, MAX_YEAR + 1) if _in_years(y, years)), None)


def _in_years(year: int, years: str) -> bool:
    if years == "*":
        return True
    for part in years.split(","):
        span, _, step = part.partition("/")
        first, _, last = span.partition("-")
        low, high = int(first), int(last or (first if not step else 9999))
        if low <= year <= high and (year - low) % int(step or 1) == 0:
            return True
    return False
