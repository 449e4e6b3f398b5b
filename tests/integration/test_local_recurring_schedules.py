"""The local EventBridge Scheduler (infra/local/events/scheduler.py) fires recurring schedules as Scheduler
does: cron() in the schedule's zone across DST, L, #, rate() from a StartDate, EndDate, each occurrence once
with its scheduled time in the Input, and only the latest of several missed occurrences; at() as before.

The schedules are in moto (mock_aws, in process), `fire_due(now)` is called with chosen times, and the tests
read what reached the SQS queue. moto stamps CreationDate and LastModificationDate with the wall clock (and
checks a cron StartDate against it), so the tests set moto's clock to the times they play."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import boto3
import moto.scheduler.models
import pytest
from moto import mock_aws

from infra.local.events.scheduler import ScheduleTargets, parse_cron

pytestmark = pytest.mark.integration

REGION = "us-east-1"
GROUP = "campaigns"
QUEUE = "release"
ROLE_ARN = "arn:aws:iam::123456789012:role/scheduler"
STAMP = "<aws.scheduler.scheduled-time>"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def z(when: datetime) -> str:
    """How Scheduler writes <aws.scheduler.scheduled-time>."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class MotoClock:
    """moto's clock for the scheduler backend (CreationDate, LastModificationDate, the StartDate check)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = utc(2026, 1, 1)
        original = moto.scheduler.models.unix_time
        monkeypatch.setattr(
            moto.scheduler.models, "unix_time", lambda dt=None: original(dt) if dt else self.now.timestamp()
        )
        monkeypatch.setattr(moto.scheduler.models, "utcnow", lambda: self.now.replace(tzinfo=None))


@dataclass
class RunnerStub:
    """What ScheduleTargets uses of the LocalEventRunner."""

    sqs: Any
    endpoint_url: str | None = None
    region: str = REGION


@dataclass
class Local:
    clock: MotoClock
    scheduler: Any
    sqs: Any
    queue_url: str
    targets: ScheduleTargets

    def create(self, name: str, expression: str, input_: str = STAMP, **extra: Any) -> None:
        self.scheduler.create_schedule(
            Name=name,
            GroupName=GROUP,
            ScheduleExpression=expression,
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": f"arn:aws:sqs:{REGION}:123456789012:{QUEUE}", "RoleArn": ROLE_ARN, "Input": input_},
            **extra,
        )

    def update(self, name: str, expression: str, input_: str = STAMP, **extra: Any) -> None:
        """As the product would: the whole definition again (here without a State, as put_start does)."""
        self.scheduler.update_schedule(
            Name=name,
            GroupName=GROUP,
            ScheduleExpression=expression,
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": f"arn:aws:sqs:{REGION}:123456789012:{QUEUE}", "RoleArn": ROLE_ARN, "Input": input_},
            **extra,
        )

    def received(self) -> list[str]:
        """The bodies on the queue since the last call (taken off it)."""
        bodies: list[str] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(message["Body"])
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def tick(self, when: datetime) -> list[str]:
        """One tick of the runner at `when`: what it sent."""
        self.targets.fire_due(when.timestamp())
        return self.received()

    def ticks(self, first: datetime, last: datetime, every: timedelta) -> list[str]:
        """Ticks from `first` to `last`: all it sent, in order."""
        sent: list[str] = []
        when = first
        while when <= last:
            sent += self.tick(when)
            when += every
        return sent


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch) -> Iterator[Local]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    clock = MotoClock(monkeypatch)
    with mock_aws():
        scheduler = boto3.client("scheduler", region_name=REGION)
        scheduler.create_schedule_group(Name=GROUP)
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
        targets = ScheduleTargets(cast(Any, RunnerStub(sqs)), GROUP)
        yield Local(clock, scheduler, sqs, queue_url, targets)


def test_eventbridge_cron_becomes_cronsim_fields_with_sunday_zero() -> None:
    assert parse_cron("cron(0 9 ? * MON-FRI *)").fields == "0 9 * * 1,2,3,4,5"
    assert parse_cron("cron(0 9 ? * 2-6 *)").fields == "0 9 * * 1,2,3,4,5"
    assert parse_cron("cron(0 9 ? * 1,7 *)").fields == "0 9 * * 0,6"
    assert parse_cron("cron(0 9 ? * 7-1 *)").fields == "0 9 * * 6,0"
    assert parse_cron("cron(0 9 ? * 6#3 *)").fields == "0 9 * * 5#3"
    assert parse_cron("cron(0 9 ? * 6L *)").fields == "0 9 * * 5L"
    assert parse_cron("cron(0 9 ? * L *)").fields == "0 9 * * 6"
    assert parse_cron("cron(0 12 L * ? *)").fields == "0 12 L * *"
    years = parse_cron("cron(0 9 * * ? 2026-2027,2030)")
    assert (years.fields, years.years) == ("0 9 * * *", frozenset({2026, 2027, 2030}))
    assert parse_cron("cron(0 9 * * ? *)").years is None
    for refused in (
        "cron(0 9 * * * *)",
        "cron(0 9 ? * ? *)",
        "cron(0 9 ? * 0 *)",
        "cron(0 9 * * ?)",
        "cron(0 9 * * ? 1969)",
    ):
        with pytest.raises(ValueError):
            parse_cron(refused)


def test_a_weekday_cron_in_new_york_fires_at_nine_local_across_the_dst_change(local: Local) -> None:
    local.clock.now = utc(2026, 3, 5, 12)  # Thursday
    local.create("weekdays", "cron(0 9 ? * MON-FRI *)", ScheduleExpressionTimezone="America/New_York")
    assert local.tick(utc(2026, 3, 5, 13, 59, 59)) == []
    assert local.tick(utc(2026, 3, 5, 14)) == ["2026-03-05T14:00:00Z"]  # Thursday 09:00 EST
    # Friday 09:00 EST; the weekend (DST begins Sunday 2026-03-08 at 02:00 local) fires nothing.
    sent = local.ticks(utc(2026, 3, 5, 14, 30), utc(2026, 3, 9, 12, 30), timedelta(minutes=30))
    assert sent == ["2026-03-06T14:00:00Z"]
    assert local.tick(utc(2026, 3, 9, 12, 59, 59)) == []
    assert local.tick(utc(2026, 3, 9, 13)) == ["2026-03-09T13:00:00Z"]  # Monday 09:00 EDT
    sent = local.ticks(utc(2026, 3, 9, 13, 30), utc(2026, 3, 10, 18), timedelta(minutes=30))
    assert sent == ["2026-03-10T13:00:00Z"]


def test_a_local_time_the_dst_change_skips_does_not_fire_and_one_it_repeats_fires_once(local: Local) -> None:
    # Scheduler: skipped if it falls on a time that does not exist (spring), runs only once (autumn).
    new_york = {"ScheduleExpressionTimezone": "America/New_York"}
    local.clock.now = utc(2026, 3, 6, 12)
    local.create("half-past-two", "cron(30 2 * * ? *)", **new_york)
    sent = local.ticks(utc(2026, 3, 6, 12), utc(2026, 3, 9, 12), timedelta(minutes=30))
    assert sent == ["2026-03-07T07:30:00Z", "2026-03-09T06:30:00Z"]  # 2026-03-08 02:30 does not exist
    local.scheduler.delete_schedule(Name="half-past-two", GroupName=GROUP)
    local.clock.now = utc(2026, 10, 30, 12)
    local.create("half-past-one", "cron(30 1 * * ? *)", "daily " + STAMP, **new_york)
    local.create("every-half-past", "cron(30 * * * ? *)", "hourly " + STAMP, **new_york)
    sent = local.ticks(utc(2026, 10, 31, 4), utc(2026, 11, 1, 8), timedelta(minutes=30))
    sent += local.ticks(utc(2026, 11, 2, 6), utc(2026, 11, 2, 7), timedelta(minutes=30))
    assert [body for body in sent if body.startswith("daily")] == [
        "daily 2026-10-31T05:30:00Z",
        "daily 2026-11-01T05:30:00Z",  # 01:30 EDT; 01:30 EST (06:30Z) is the same local time again
        "daily 2026-11-02T06:30:00Z",
    ]
    hourly = [body for body in sent if body.startswith("hourly 2026-11-01")]
    assert hourly[:6] == [f"hourly 2026-11-01T0{hour}:30:00Z" for hour in (0, 1, 2, 3, 4, 5)]
    assert hourly[6:] == ["hourly 2026-11-01T07:30:00Z"]  # 01:30 EST (06:30Z) not again; 02:30 EST


def test_a_last_day_of_month_cron_fires_on_the_28th_31st_and_30th(local: Local) -> None:
    local.clock.now = utc(2026, 2, 20)
    local.create("month-end", "cron(0 12 L * ? *)")
    sent = local.ticks(utc(2026, 2, 20, 12, 0, 30), utc(2026, 4, 30, 12, 0, 30), timedelta(days=1))
    assert sent == ["2026-02-28T12:00:00Z", "2026-03-31T12:00:00Z", "2026-04-30T12:00:00Z"]


def test_an_nth_weekday_cron_counts_days_of_week_from_sunday_as_one(local: Local) -> None:
    # 6#3 is the third Friday (cron's 5#3); in Paris, whose DST begins 2026-03-29.
    local.clock.now = utc(2026, 3, 1)
    local.create("third-friday", "cron(30 10 ? * 6#3 *)", ScheduleExpressionTimezone="Europe/Paris")
    sent = local.ticks(utc(2026, 3, 1, 10), utc(2026, 4, 30, 10), timedelta(days=1))
    assert sent == ["2026-03-20T09:30:00Z", "2026-04-17T08:30:00Z"]


def test_a_rate_fires_from_its_start_date_every_period(local: Local) -> None:
    local.clock.now = utc(2026, 3, 1, 8)
    local.create("every-two-hours", "rate(2 hours)", StartDate=utc(2026, 3, 1, 10))
    assert local.tick(utc(2026, 3, 1, 9, 59, 59)) == []
    sent = local.ticks(utc(2026, 3, 1, 10), utc(2026, 3, 1, 16, 30), timedelta(minutes=30))
    assert sent == ["2026-03-01T10:00:00Z", "2026-03-01T12:00:00Z", "2026-03-01T14:00:00Z", "2026-03-01T16:00:00Z"]


def test_a_rate_without_start_date_counts_from_its_creation(local: Local) -> None:
    assert local.tick(utc(2026, 3, 1, 8)) == []  # the runner is running
    local.clock.now = utc(2026, 3, 1, 8, 0, 20)
    local.create("every-five-minutes", "rate(5 minutes)")
    sent = local.ticks(utc(2026, 3, 1, 8, 0, 30), utc(2026, 3, 1, 8, 16), timedelta(minutes=1))
    assert sent == ["2026-03-01T08:00:20Z", "2026-03-01T08:05:20Z", "2026-03-01T08:10:20Z", "2026-03-01T08:15:20Z"]


def test_the_end_date_stops_a_rate_and_the_start_and_end_dates_bound_a_cron(local: Local) -> None:
    local.clock.now = utc(2026, 3, 1, 8)
    local.create("hourly-rate", "rate(1 hour)", StartDate=utc(2026, 3, 1, 10), EndDate=utc(2026, 3, 1, 12, 30))
    local.create(
        "hourly-cron", "cron(45 * * * ? *)", "cron " + STAMP, StartDate=utc(2026, 3, 1, 9), EndDate=utc(2026, 3, 1, 11)
    )
    sent = local.ticks(utc(2026, 3, 1, 8), utc(2026, 3, 1, 16), timedelta(minutes=15))
    assert sent == [
        "cron 2026-03-01T09:45:00Z",
        "2026-03-01T10:00:00Z",
        "cron 2026-03-01T10:45:00Z",
        "2026-03-01T11:00:00Z",
        "2026-03-01T12:00:00Z",
    ]


def test_the_input_gets_the_scheduled_time_a_fresh_execution_id_and_attempt_one(local: Local) -> None:
    local.clock.now = utc(2026, 3, 1, 8)
    template = {
        "campaign": "c#1",
        "at": STAMP,
        "again": f"start {STAMP}",
        "execution": "<aws.scheduler.execution-id>",
        "attempt": "<aws.scheduler.attempt-number>",
        "schedule": "<aws.scheduler.schedule-arn>",
    }
    local.create("daily", "cron(0 9 * * ? *)", json.dumps(template))
    arn = local.scheduler.get_schedule(Name="daily", GroupName=GROUP)["Arn"]
    first, second = (
        json.loads(body) for body in local.ticks(utc(2026, 3, 1, 9), utc(2026, 3, 2, 9), timedelta(days=1))
    )
    for body, day in ((first, 1), (second, 2)):
        execution = body.pop("execution")
        assert uuid.UUID(execution).version == 4
        assert body == {
            "campaign": "c#1",
            "at": f"2026-03-0{day}T09:00:00Z",
            "again": f"start 2026-03-0{day}T09:00:00Z",
            "attempt": "1",
            "schedule": arn,
        }
    assert first != second


def test_each_occurrence_fires_once_however_often_the_runner_ticks(local: Local) -> None:
    local.clock.now = utc(2026, 3, 1, 8, 59)
    local.create("every-minute", "cron(* * * * ? *)")
    assert local.tick(utc(2026, 3, 1, 9)) == ["2026-03-01T09:00:00Z"]
    for _ in range(3):
        assert local.tick(utc(2026, 3, 1, 9)) == []
        assert local.tick(utc(2026, 3, 1, 9, 0, 59)) == []
    assert local.tick(utc(2026, 3, 1, 9, 1, 0, 500000)) == ["2026-03-01T09:01:00Z"]
    assert local.tick(utc(2026, 3, 1, 9, 1, 30)) == []
    assert local.targets.fired == 2


def test_a_lagging_runner_fires_only_the_latest_missed_occurrence(local: Local) -> None:
    assert local.tick(utc(2026, 3, 1, 9, 59)) == []  # the runner is running
    local.clock.now = utc(2026, 3, 1, 9, 59, 30)
    local.create("quarter-hours", "cron(0/15 * * * ? *)")
    local.create("half-hours", "rate(30 minutes)", "rate " + STAMP, StartDate=utc(2026, 3, 1, 10))
    assert sorted(local.tick(utc(2026, 3, 1, 10, 0, 10))) == ["2026-03-01T10:00:00Z", "rate 2026-03-01T10:00:00Z"]
    # Asleep from 10:00:10 to 11:20: 10:15 ... 11:15 and 10:30 ... 11:00 were missed.
    assert sorted(local.tick(utc(2026, 3, 1, 11, 20))) == ["2026-03-01T11:15:00Z", "rate 2026-03-01T11:00:00Z"]
    assert local.tick(utc(2026, 3, 1, 11, 29, 59)) == []
    assert sorted(local.tick(utc(2026, 3, 1, 11, 30))) == ["2026-03-01T11:30:00Z", "rate 2026-03-01T11:30:00Z"]


def test_no_occurrence_before_the_runner_first_ticked_fires_but_one_after_the_creation_does(local: Local) -> None:
    local.clock.now = utc(2026, 3, 1, 8)
    local.create("hourly", "cron(0 * * * ? *)")
    # The runner starts at 10:07: 9:00 and 10:00 are history, not fired.
    assert local.tick(utc(2026, 3, 1, 10, 7)) == []
    assert local.tick(utc(2026, 3, 1, 11, 0, 1)) == ["2026-03-01T11:00:00Z"]
    # Created half a second before 12:00, first seen at the tick after it: 12:00 fires.
    local.clock.now = utc(2026, 3, 1, 11, 59, 59, 500000)
    local.create("hourly-too", "cron(0 * * * ? *)", "too " + STAMP)
    assert sorted(local.tick(utc(2026, 3, 1, 12, 0, 0, 700000))) == ["2026-03-01T12:00:00Z", "too 2026-03-01T12:00:00Z"]
    # Created just after 13:00 (and seen late): its first occurrence is 14:00.
    local.clock.now = utc(2026, 3, 1, 13, 0, 0, 300000)
    local.create("hourly-three", "cron(0 * * * ? *)", "three " + STAMP)
    assert sorted(local.tick(utc(2026, 3, 1, 13, 30))) == ["2026-03-01T13:00:00Z", "too 2026-03-01T13:00:00Z"]
    assert sorted(local.tick(utc(2026, 3, 1, 14))) == [
        "2026-03-01T14:00:00Z",
        "three 2026-03-01T14:00:00Z",
        "too 2026-03-01T14:00:00Z",
    ]


def test_an_updated_schedule_fires_by_its_new_definition_from_the_update_on_and_never_twice(local: Local) -> None:
    local.clock.now = utc(2026, 3, 1, 8)
    local.create("daily", "cron(0 9 * * ? *)")
    assert local.tick(utc(2026, 3, 1, 8, 0, 1)) == []
    assert local.tick(utc(2026, 3, 1, 9, 0, 10)) == ["2026-03-01T09:00:00Z"]
    # 10:00 in Paris is 09:00Z, the occurrence already fired: not again.
    local.clock.now = utc(2026, 3, 1, 9, 0, 20)
    local.update("daily", "cron(0 10 * * ? *)", ScheduleExpressionTimezone="Europe/Paris")
    assert "State" not in local.scheduler.get_schedule(Name="daily", GroupName=GROUP)  # moto dropped it
    assert local.tick(utc(2026, 3, 1, 9, 0, 30)) == []
    assert local.tick(utc(2026, 3, 2, 8, 59, 59)) == []
    assert local.tick(utc(2026, 3, 2, 9, 0, 5)) == ["2026-03-02T09:00:00Z"]
    # Moved at 12:00 to 11:00 UTC: today's 11:00 was before the move, so the next is tomorrow's.
    local.clock.now = utc(2026, 3, 2, 12)
    local.update("daily", "cron(0 11 * * ? *)")
    assert local.tick(utc(2026, 3, 2, 12, 0, 10)) == []
    assert local.tick(utc(2026, 3, 3, 11)) == ["2026-03-03T11:00:00Z"]
    # Moved at 11:30 to 13:00: today's 13:00 fires.
    local.clock.now = utc(2026, 3, 3, 11, 30)
    local.update("daily", "cron(0 13 * * ? *)")
    assert local.tick(utc(2026, 3, 3, 13)) == ["2026-03-03T13:00:00Z"]


def test_a_disabled_schedule_fires_nothing_and_once_enabled_nothing_of_its_disabled_time(local: Local) -> None:
    local.clock.now = utc(2026, 3, 1, 8)
    local.create("hourly", "cron(0 * * * ? *)", State="DISABLED")
    assert local.ticks(utc(2026, 3, 1, 8, 30), utc(2026, 3, 1, 10, 30), timedelta(minutes=30)) == []
    local.clock.now = utc(2026, 3, 1, 10, 40)
    local.update("hourly", "cron(0 * * * ? *)", State="ENABLED")
    assert local.tick(utc(2026, 3, 1, 10, 45)) == []
    assert local.tick(utc(2026, 3, 1, 11)) == ["2026-03-01T11:00:00Z"]
    local.clock.now = utc(2026, 3, 1, 11, 10)
    local.update("hourly", "cron(0 * * * ? *)", State="DISABLED")
    assert local.tick(utc(2026, 3, 1, 12)) == []
    local.clock.now = utc(2026, 3, 1, 12, 10)
    local.update("hourly", "cron(0 * * * ? *)", State="ENABLED")
    assert local.tick(utc(2026, 3, 1, 12, 15)) == []
    assert local.tick(utc(2026, 3, 1, 13)) == ["2026-03-01T13:00:00Z"]


def test_a_one_time_schedule_fires_once_at_its_time_and_is_deleted(local: Local) -> None:
    local.clock.now = utc(2026, 3, 1, 8)
    body = json.dumps({"campaign": "c#1", "start_at": 1772355600})
    local.create(
        "campaign-1",
        "at(2026-03-01T10:00:00)",
        body,
        ScheduleExpressionTimezone="Europe/Paris",
        ActionAfterCompletion="DELETE",
    )
    local.create("kept", "at(2026-03-01T09:30:00)", "kept", ActionAfterCompletion="NONE")
    assert local.tick(utc(2026, 3, 1, 8, 59, 59)) == []
    assert local.tick(utc(2026, 3, 1, 9)) == [body]  # 10:00 in Paris
    with pytest.raises(local.scheduler.exceptions.ResourceNotFoundException):
        local.scheduler.get_schedule(Name="campaign-1", GroupName=GROUP)
    assert local.tick(utc(2026, 3, 1, 9, 0, 1)) == []
    # Without ActionAfterCompletion DELETE it stays, fired once.
    assert local.tick(utc(2026, 3, 1, 9, 30)) == ["kept"]
    assert local.tick(utc(2026, 3, 1, 9, 31)) == []
    assert local.scheduler.get_schedule(Name="kept", GroupName=GROUP)["Name"] == "kept"


def test_a_one_time_schedule_moved_by_an_update_fires_at_its_new_time(local: Local) -> None:
    # moto drops the State of an update that sends none (as put_start's): it is ENABLED all the same.
    local.clock.now = utc(2026, 3, 1, 8)
    local.create("campaign-2", "at(2026-03-01T10:00:00)", "start", ActionAfterCompletion="DELETE")
    local.update("campaign-2", "at(2026-03-01T11:00:00)", "start later")
    assert "State" not in local.scheduler.get_schedule(Name="campaign-2", GroupName=GROUP)
    assert local.ticks(utc(2026, 3, 1, 9), utc(2026, 3, 1, 10, 59, 59), timedelta(minutes=30)) == []
    assert local.tick(utc(2026, 3, 1, 11)) == ["start later"]
    assert local.scheduler.list_schedules(GroupName=GROUP)["Schedules"] == []
