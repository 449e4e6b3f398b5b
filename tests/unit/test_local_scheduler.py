from datetime import UTC, datetime

import pytest

from infra.local.events.scheduler import due_at

pytestmark = pytest.mark.unit


def test_one_time_schedules_are_due_at_their_time_in_their_zone_and_others_never() -> None:
    paris = {"ScheduleExpression": "at(2026-12-01T09:00:00)", "ScheduleExpressionTimezone": "Europe/Paris"}
    assert due_at(paris) == datetime(2026, 12, 1, 8, 0, tzinfo=UTC).timestamp()
    utc = {"ScheduleExpression": "at(2026-07-01T09:00:00)"}
    assert due_at(utc) == datetime(2026, 7, 1, 9, 0, tzinfo=UTC).timestamp()
    assert due_at({"ScheduleExpression": "rate(1 minute)"}) is None
    assert due_at({"ScheduleExpression": "cron(0 9 * * ? *)"}) is None
