"""EventBridge Scheduler, as it delivers schedules to SQS targets. moto holds the schedules (`scheduler` API)
but fires none; this loop is what does: every `schedule_tick_seconds` of the runner, `fire_due(now)` looks at
the schedules of the stack's group and, for each occurrence whose time has come, sends its target's Input to
the queue the target names.

- `at(...)`, one-time: fires once its time (in `ScheduleExpressionTimezone`) has come, then is deleted
  (`ActionAfterCompletion: DELETE`, what the product sets; without it, it stays and does not fire again).
- `cron(minutes hours day-of-month month day-of-week year)`, EventBridge's syntax, evaluated in the schedule's
  zone (default UTC) by cronsim, which takes five cron fields: the year is enforced here, `?` becomes `*`,
  day-of-week 1-7 = SUN-SAT becomes 0-6 (in ranges, lists, `nL`, `n#k`; a lone `L` is Saturday), and `nW`
  (nearest weekday, which cronsim lacks) is computed here. As Scheduler does, a local time that the spring DST
  change skips does not fire, and one that the autumn change repeats fires once.
- `rate(n minute[s]|hour[s]|day[s])`: StartDate (else the CreationDate moto returns, else when this emulator
  first saw the schedule) + k * period, in absolute time (a day is 24 hours, as in Scheduler).
- No occurrence before StartDate or after EndDate fires; only ENABLED schedules fire. A schedule without a State
  counts as ENABLED: moto drops the State on an `update_schedule` that sends none (Scheduler's default is
  ENABLED), and `list_schedules(State="ENABLED")` then leaves it out, so all schedules are listed here.
- The Input is sent with Scheduler's context attributes replaced: `<aws.scheduler.scheduled-time>` by the
  occurrence (UTC, `YYYY-MM-DDTHH:MM:SSZ`), `<aws.scheduler.execution-id>` by a fresh uuid,
  `<aws.scheduler.attempt-number>` by 1 and `<aws.scheduler.schedule-arn>` by the schedule's ARN.

Each occurrence fires once. The state is in memory, per recurring schedule: its definition (expression, zone,
StartDate) and the last occurrence fired. Where this departs from Scheduler, on purpose:

- No back-fill: a schedule fires no occurrence from before it was created or last modified (its
  LastModificationDate), nor from before this emulator's first tick (a restarted runner does not fire again
  what its predecessor fired). An occurrence between a schedule's creation and the next tick does fire.
- No burst of catch-ups: if the ticks fall behind by several occurrences (a slow tick, a paused process), only
  the most recent due occurrence fires; the earlier ones are dropped.
- A change of expression, zone, StartDate or State (`update_schedule`) recomputes from the new definition,
  from the time of the change on, and never fires again an occurrence already fired.
- FlexibleTimeWindow is ignored (as Mode OFF); a failed send is tried again at the next tick (no RetryPolicy,
  no dead-letter queue).
"""

from __future__ import annotations

import calendar
import contextlib
import logging
import math
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import boto3
from cronsim import CronSim, CronSimError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from infra.local.runner import LocalEventRunner

logger = logging.getLogger(__name__)

DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
FIRST_YEAR, LAST_YEAR = 1970, 2199
RATE = re.compile(r"rate\((\d+) +([a-z]+)\)")
RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
EXECUTION_ID = "<aws.scheduler.execution-id>"
ATTEMPT_NUMBER = "<aws.scheduler.attempt-number>"
SCHEDULE_ARN = "<aws.scheduler.schedule-arn>"
# Restarts of a backward cron search (past a year the expression excludes, or a day that is not `nW`'s).
MAX_RESTARTS = 10_000


def due_at(schedule: Mapping[str, Any]) -> float | None:
    """When a one-time schedule fires (epoch seconds); None for rate() and cron() schedules."""
    expression = str(schedule.get("ScheduleExpression", ""))
    if not (expression.startswith("at(") and expression.endswith(")")):
        return None
    local = datetime.fromisoformat(expression[3:-1])
    zone = ZoneInfo(str(schedule.get("ScheduleExpressionTimezone") or "UTC"))
    return local.replace(tzinfo=zone).astimezone(UTC).timestamp()


# -- cron() ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cron:
    """An EventBridge cron expression as cronsim evaluates it: five cron fields, the years the expression
    allows (None: any), and the day n of a day-of-month `nW` (cronsim is given the days around it, and the
    day that is not n's nearest weekday is dropped here)."""

    fields: str
    years: frozenset[int] | None = None
    nearest_weekday_to: int | None = None


@lru_cache(maxsize=256)
def parse_cron(expression: str) -> Cron:
    """`cron(minutes hours day-of-month month day-of-week year)` as cronsim's fields; ValueError for one
    EventBridge refuses (as far as checked here: field count, one and only one `?`, the values)."""
    text = expression.strip()
    if not (text.startswith("cron(") and text.endswith(")")):
        raise ValueError(f"{expression!r}: not a cron() expression")
    parts = text[5:-1].upper().split()
    if len(parts) != 6:
        raise ValueError(f"{expression!r}: six fields expected, not {len(parts)}")
    minutes, hours, day_of_month, month, day_of_week, year = parts
    if (day_of_month == "?") == (day_of_week == "?"):
        raise ValueError(f"{expression!r}: one of day-of-month and day-of-week must be ?, and only one")
    try:
        days, nearest = _day_of_month(day_of_month)
        fields = " ".join((minutes, hours, days, month, _day_of_week(day_of_week)))
        CronSim(fields, datetime(2000, 1, 1, tzinfo=UTC))  # checks the fields
        return Cron(fields, _years(year), nearest)
    except (CronSimError, ValueError) as exc:
        raise ValueError(f"{expression!r}: {exc}") from exc


def _day_of_month(field: str) -> tuple[str, int | None]:
    """cronsim's day-of-month, and n for `nW`."""
    if field == "?":
        return "*", None
    match = re.fullmatch(r"(\d{1,2})W", field)
    if match is None:
        return field, None  # numbers, ranges, steps, lists, L and LW: cronsim's own syntax
    day = int(match[1])
    if not 1 <= day <= 31:
        raise ValueError(f"bad day-of-month {field!r}")
    return ",".join(str(d) for d in range(max(1, day - 2), min(31, day + 2) + 1)), day


def _weekday(token: str) -> int:
    """An EventBridge day of the week (1-7 or SUN-SAT, Sunday first) as cron's 0-6 (Sunday 0)."""
    if token in DAY_NAMES:
        return DAY_NAMES.index(token)
    if token.isdigit() and 1 <= int(token) <= 7:
        return int(token) - 1
    raise ValueError(f"bad day-of-week {token!r}")


def _positive(text: str, what: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise ValueError(f"bad {what} {text!r}")
    return int(text)


def _day_of_week(field: str) -> str:
    """cronsim's day-of-week, Sunday 0."""
    if field in ("?", "*"):
        return "*"
    return ",".join(_day_of_week_term(term) for term in field.split(","))


def _day_of_week_term(term: str) -> str:
    if term == "L":  # alone, the last day of the week
        return str(DAY_NAMES.index("SAT"))
    if term.endswith("L"):  # the last <day> of the month
        return f"{_weekday(term[:-1])}L"
    if "#" in term:  # the nth <day> of the month
        day, nth = term.split("#", 1)
        if _positive(nth, "day-of-week #") > 5:
            raise ValueError(f"bad day-of-week {term!r}")
        return f"{_weekday(day)}#{int(nth)}"
    span, slash, step = term.partition("/")
    every = _positive(step, "day-of-week step") if slash else 1
    if span == "*":
        days = list(range(7))
    elif "-" in span:
        first, last = (_weekday(token) for token in span.split("-", 1))
        days = list(range(first, last + 1)) if first <= last else [*range(first, 7), *range(last + 1)]
    else:
        first = _weekday(span)
        days = list(range(first, 7)) if slash else [first]
    return ",".join(str(day) for day in days[::every])


def _year(token: str) -> int:
    if not token.isdigit() or not FIRST_YEAR <= int(token) <= LAST_YEAR:
        raise ValueError(f"bad year {token!r}")
    return int(token)


def _years(field: str) -> frozenset[int] | None:
    """The years of the year field; None for `*`."""
    if field == "*":
        return None
    years: set[int] = set()
    for term in field.split(","):
        span, slash, step = term.partition("/")
        every = _positive(step, "year step") if slash else 1
        if span == "*":
            first, last = FIRST_YEAR, LAST_YEAR
        elif "-" in span:
            first, last = (_year(token) for token in span.split("-", 1))
        else:
            first = _year(span)
            last = LAST_YEAR if slash else first
        if first > last:
            raise ValueError(f"bad year {term!r}")
        years.update(range(first, last + 1, every))
    return frozenset(years)


def _nearest_weekday(year: int, month: int, day: int) -> int | None:
    """The weekday nearest to `day` in the month, not leaving the month (`nW`); None if the month is shorter."""
    last = calendar.monthrange(year, month)[1]
    if day > last:
        return None
    weekday = date(year, month, day).weekday()
    if weekday == 5:  # Saturday: the Friday before, or the Monday after the 1st
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: the Monday after, or the Friday before the last day
        return day + 1 if day < last else day - 2
    return day


def _not_scheduled(occurrence: datetime, times: CronSim) -> bool:
    """A time cronsim yields that Scheduler does not fire: a local time the spring DST change skips (cronsim
    moves it to the end of the gap) or the second pass of a local time the autumn change repeats."""
    if occurrence.hour not in times.hours or occurrence.minute not in times.minutes:
        return True
    return occurrence.fold == 1 and occurrence.replace(fold=0).utcoffset() != occurrence.utcoffset()


def latest_cron(cron: Cron, zone: tzinfo, until: float, not_before: float) -> float | None:
    """The latest occurrence of `cron` in `zone` at or before `until`, None if it is before `not_before`."""
    # Backwards, cronsim yields the times strictly before its start: start a second after `until`'s whole
    # second (the occurrences fall on whole minutes).
    cursor = datetime.fromtimestamp(math.floor(until) + 1, UTC).astimezone(zone)
    for _ in range(MAX_RESTARTS):
        times = CronSim(cron.fields, cursor, reverse=True)
        for occurrence in times:
            when = occurrence.timestamp()
            if when < not_before:
                return None
            if when > until or _not_scheduled(occurrence, times):
                continue
            if cron.years is not None and occurrence.year not in cron.years:
                earlier = [year for year in cron.years if year < occurrence.year]
                if not earlier:
                    return None
                cursor = datetime(max(earlier) + 1, 1, 1, tzinfo=zone)
                break
            nearest = cron.nearest_weekday_to
            if nearest is not None and occurrence.day != _nearest_weekday(occurrence.year, occurrence.month, nearest):
                cursor = datetime(occurrence.year, occurrence.month, occurrence.day, tzinfo=zone)
                break
            return when
        else:
            return None  # cronsim gives up after 50 years without an occurrence
    return None


# -- rate() and the schedule -----------------------------------------------------------------------


def rate_seconds(expression: str) -> int:
    """The period of `rate(value unit)`; ValueError for another expression."""
    match = RATE.fullmatch(expression.strip())
    if match is None or match[2] not in RATE_UNITS or int(match[1]) < 1:
        raise ValueError(f"{expression!r}: not rate(value minute[s]|hour[s]|day[s])")
    return int(match[1]) * RATE_UNITS[match[2]]


def epoch(value: Any) -> float | None:
    """A date of get_schedule (boto3 gives aware datetimes) as epoch seconds; None if absent."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float):
        return float(value)
    return epoch(datetime.fromisoformat(str(value)))


def zone_of(schedule: Mapping[str, Any]) -> tzinfo:
    name = str(schedule.get("ScheduleExpressionTimezone") or "UTC")
    if name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown ScheduleExpressionTimezone {name!r}") from exc


def latest_occurrence(schedule: Mapping[str, Any], until: float, anchor: float, not_before: float) -> float | None:
    """The latest occurrence of a recurring (rate or cron) schedule at or before `until`, within its StartDate
    and EndDate; None if there is none or it is before `not_before`. `anchor` is where a rate() schedule
    without a StartDate counts from. ValueError for an expression that is neither rate() nor cron()."""
    expression = str(schedule.get("ScheduleExpression", ""))
    start, end = epoch(schedule.get("StartDate")), epoch(schedule.get("EndDate"))
    if end is not None:
        until = min(until, end)
    if start is not None:
        not_before = max(not_before, start)
    if expression.startswith("rate("):
        period = rate_seconds(expression)
        origin = start if start is not None else anchor
        if until < max(origin, not_before):
            return None
        when = origin + math.floor((until - origin) / period) * period
        return when if when >= not_before else None
    if expression.startswith("cron("):
        cron, zone = parse_cron(expression), zone_of(schedule)
        return latest_cron(cron, zone, until, not_before) if until >= not_before else None
    raise ValueError(f"{expression!r}: not an at(), rate() or cron() expression")


def render_input(text: str, scheduled: float, schedule_arn: str | None) -> str:
    """The target's Input as Scheduler sends it, its context attributes replaced."""
    values = {
        SCHEDULED_TIME: datetime.fromtimestamp(scheduled, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        EXECUTION_ID: str(uuid.uuid4()),
        ATTEMPT_NUMBER: "1",
    }
    if schedule_arn:
        values[SCHEDULE_ARN] = schedule_arn
    for attribute, value in values.items():
        text = text.replace(attribute, value)
    return text


def enabled(schedule: Mapping[str, Any]) -> bool:
    """Scheduler's default State is ENABLED (and moto drops the State an update does not send)."""
    return (schedule.get("State") or "ENABLED") == "ENABLED"


def since(schedule: Mapping[str, Any], now: float) -> float:
    """When a schedule's present definition began: its last modification (moto stamps it at creation and at
    each update), else its creation, else `now`."""
    for key in ("LastModificationDate", "CreationDate"):
        when = epoch(schedule.get(key))
        if when is not None:
            return when
    return now


@dataclass
class Tracked:
    """What the emulator keeps of a recurring schedule between ticks."""

    created: float | None  # tells a schedule from one of the same name created after it was deleted
    definition: tuple[Any, ...]
    first_seen: float
    floor: float  # no occurrence before this fires
    last_fired: float | None = None
    enabled: bool = True


class ScheduleTargets:
    def __init__(self, runner: LocalEventRunner, group: str) -> None:
        self.runner, self.group = runner, group
        self.scheduler = boto3.client("scheduler", endpoint_url=runner.endpoint_url, region_name=runner.region)
        self.fired = 0
        self.started: float | None = None  # the `now` of the first tick
        self.tracked: dict[str, Tracked] = {}
        # One-time schedules fired and kept (no ActionAfterCompletion DELETE): their definition when fired.
        self.done: dict[str, tuple[Any, ...]] = {}
        self.refused: set[tuple[str, tuple[Any, ...]]] = set()

    def start(self) -> None:
        self.runner.spawn("scheduler", self.loop)

    def loop(self) -> None:
        while not self.runner.stopping.wait(self.runner.schedule_tick_seconds):
            self.fire_due(time.time())

    def fire_due(self, now: float) -> int:
        """Fire the occurrences due by `now` (each once), delete the one-time schedules fired; how many fired."""
        if self.started is None:
            self.started = now
        fired = 0
        listed: set[str] = set()
        # No State filter: moto leaves out of it a schedule whose update dropped its State (see `enabled`).
        for page in self.scheduler.get_paginator("list_schedules").paginate(GroupName=self.group):
            for summary in page.get("Schedules", []):
                name = str(summary["Name"])
                listed.add(name)
                if not enabled(summary):
                    if name in self.tracked:
                        self.tracked[name].enabled = False
                    continue
                try:
                    schedule = self.scheduler.get_schedule(Name=name, GroupName=self.group)
                except self.scheduler.exceptions.ResourceNotFoundException:
                    continue  # deleted since it was listed
                if enabled(schedule):
                    fired += self.fire_schedule(name, schedule, now)
        for gone in (set(self.tracked) | set(self.done)) - listed:
            self.tracked.pop(gone, None)
            self.done.pop(gone, None)
        self.fired += fired
        return fired

    def fire_schedule(self, name: str, schedule: Mapping[str, Any], now: float) -> int:
        expression = str(schedule.get("ScheduleExpression", ""))
        zone = schedule.get("ScheduleExpressionTimezone") or "UTC"
        definition = (expression, zone, epoch(schedule.get("StartDate")), epoch(schedule.get("CreationDate")))
        try:
            if expression.startswith("at("):
                return self.fire_once(name, schedule, now, definition)
            return self.fire_recurring(name, schedule, now, definition[:3])
        except ValueError as exc:
            if (name, definition) not in self.refused:
                self.refused.add((name, definition))
                logger.warning("schedule %s/%s never fires locally: %s", self.group, name, exc)
            return 0

    def fire_once(self, name: str, schedule: Mapping[str, Any], now: float, definition: tuple[Any, ...]) -> int:
        when = due_at(schedule)
        if when is None or when > now or self.done.get(name) == definition:
            return 0
        self.send(schedule, when)
        if schedule.get("ActionAfterCompletion") == "DELETE":
            # Deleted meanwhile (unscheduled as it fired): nothing to do.
            with contextlib.suppress(self.scheduler.exceptions.ResourceNotFoundException):
                self.scheduler.delete_schedule(Name=name, GroupName=self.group)
        else:
            self.done[name] = definition
        return 1

    def fire_recurring(self, name: str, schedule: Mapping[str, Any], now: float, definition: tuple[Any, ...]) -> int:
        started = self.started if self.started is not None else now
        created = epoch(schedule.get("CreationDate"))
        tracked = self.tracked.get(name)
        if tracked is None or tracked.created != created:
            floor = max(since(schedule, now), started)
            tracked = self.tracked[name] = Tracked(created, definition, first_seen=now, floor=floor)
        elif tracked.definition != definition or not tracked.enabled:
            # Changed (or enabled again): from the change on, by the new definition.
            tracked.definition, tracked.enabled = definition, True
            tracked.floor = max(tracked.floor, since(schedule, now))
        anchor = created if created is not None else tracked.first_seen
        when = latest_occurrence(schedule, now, anchor, tracked.floor)
        if when is None or (tracked.last_fired is not None and when <= tracked.last_fired):
            return 0
        self.send(schedule, when)
        tracked.last_fired = when
        return 1

    def send(self, schedule: Mapping[str, Any], scheduled: float) -> None:
        target = schedule["Target"]
        queue_name = str(target["Arn"]).rsplit(":", 1)[-1]
        url = self.runner.sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
        body = render_input(str(target.get("Input", "{}")), scheduled, schedule.get("Arn"))
        self.runner.sqs.send_message(QueueUrl=url, MessageBody=body)
