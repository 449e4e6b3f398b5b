"""EventBridge Scheduler's expressions, as the API checks them and shows the next run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cronsim import CronSim

from chalicelib.domain.recurrence import InvalidExpression, next_occurrence, parse

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


def _next(expression: str, after: datetime, zone: str = "UTC") -> datetime | None:
    return next_occurrence(expression, zone, after, ANCHOR)


def test_a_weekday_cron_in_new_york_keeps_9_local_across_the_dst_change() -> None:
    before = _next("cron(0 9 ? * MON-FRI *)", datetime(2026, 3, 6, 15, tzinfo=UTC), "America/New_York")
    after = _next("cron(0 9 ? * MON-FRI *)", datetime(2026, 3, 9, 14, tzinfo=UTC), "America/New_York")
    assert before is not None and after is not None
    assert before.astimezone(UTC) == datetime(2026, 3, 9, 13, tzinfo=UTC)  # Monday, EDT
    assert after.astimezone(UTC) == datetime(2026, 3, 10, 13, tzinfo=UTC)
    friday = _next("cron(0 9 ? * MON-FRI *)", datetime(2026, 3, 5, 15, tzinfo=UTC), "America/New_York")
    assert friday is not None and friday.astimezone(UTC) == datetime(2026, 3, 6, 14, tzinfo=UTC)  # EST


def test_day_of_week_numbers_are_eventbridge_s_sunday_1() -> None:
    # 6 is Friday in EventBridge (0-6 cron would read it as Saturday); 6#3 the third Friday.
    assert _next("cron(0 12 ? * 6 *)", datetime(2026, 11, 26, tzinfo=UTC)) == datetime(2026, 11, 27, 12, tzinfo=UTC)
    assert _next("cron(0 12 ? * 6#3 *)", datetime(2026, 11, 1, tzinfo=UTC)) == datetime(2026, 11, 20, 12, tzinfo=UTC)
    assert _next("cron(0 12 ? * 2-6 *)", datetime(2026, 11, 28, tzinfo=UTC)) == datetime(2026, 11, 30, 12, tzinfo=UTC)


def test_last_day_of_the_month_and_years() -> None:
    assert _next("cron(0 12 L * ? *)", datetime(2026, 2, 1, tzinfo=UTC)) == datetime(2026, 2, 28, 12, tzinfo=UTC)
    assert _next("cron(0 12 1 1 ? 2028)", datetime(2026, 2, 1, tzinfo=UTC)) == datetime(2028, 1, 1, 12, tzinfo=UTC)
    assert _next("cron(0 12 1 1 ? 2025)", datetime(2026, 2, 1, tzinfo=UTC)) is None


def test_a_rate_counts_its_periods_from_the_anchor() -> None:
    assert _next("rate(2 hours)", datetime(2026, 1, 1, 3, tzinfo=UTC)) == datetime(2026, 1, 1, 4, tzinfo=UTC)
    assert _next("rate(1 day)", datetime(2025, 6, 1, tzinfo=UTC)) == ANCHOR
    assert _next("rate(1 day)", ANCHOR) == datetime(2026, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("cron(0 9 * * MON-FRI *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 9 ? * ? *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 9 ? * MON-FRI)", "6 fields"),
        ("cron(0 25 ? * MON *)", "not a valid cron expression"),
        ("cron(0 9 ? * MON 26)", "year field"),
        ("rate(1 days)", "`day` for 1"),
        ("rate(2 hour)", "`hours` above 1"),
        ("rate(0 minutes)", "at least 1"),
        ("every day", "must be `cron("),
    ],
)
def test_what_eventbridge_refuses_is_refused_with_the_reason(expression: str, reason: str) -> None:
    with pytest.raises(InvalidExpression, match=reason.replace("(", r"\(")):
        parse(expression)


def test_a_cron_of_a_far_year_is_found_at_once_and_years_after_eventbridge_s_last_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import chalicelib.domain.recurrence as recurrence

    walked = []

    def counted(expression: str, start: datetime) -> Any:
        for moment in CronSim(expression, start):
            walked.append(moment)
            yield moment

    monkeypatch.setattr(recurrence, "CronSim", counted)
    assert _next("cron(* * ? * * 2099)", datetime(2026, 11, 26, tzinfo=UTC)) == datetime(2099, 1, 1, tzinfo=UTC)
    assert _next("cron(0 12 1 1 ? 2026,2099)", datetime(2026, 2, 1, tzinfo=UTC)) == datetime(2099, 1, 1, 12, tzinfo=UTC)
    assert len(walked) < 10, "walked the years between minute by minute"
    with pytest.raises(InvalidExpression, match="year field"):
        parse("cron(0 9 ? * MON 2200)")
