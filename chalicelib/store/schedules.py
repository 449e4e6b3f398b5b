"""Scheduled starts as EventBridge Scheduler one-time schedules: `at(<UTC time>)`, one per campaign (named
by its id, in the stack's schedule group), whose target sends `{"campaign": pk, "start_at": <epoch>}` to
the release queue. The schedule deletes itself after it fires; rescheduling updates it, unscheduling,
cancelling or deleting the campaign deletes it.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.settings import get_settings
from chalicelib.store import aws

FLEXIBLE_WINDOW = {"Mode": "OFF"}  # fire at the time, not within a window after it


@lru_cache(maxsize=1)
def scheduler() -> Any:
    return aws._client("scheduler")


aws.on_reset(scheduler.cache_clear)


def start_message(pk: str, start_at: float) -> dict[str, Any]:
    """What the schedule sends to the release queue (the release worker starts the campaign)."""
    return {"campaign": pk, "start_at": start_at}


def put_start(campaign_id: str, pk: str, start_at: float) -> None:
    """Create the campaign's start schedule, or move it to `start_at` if it exists."""
    settings = get_settings()
    when = datetime.fromtimestamp(start_at, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    request = {
        "Name": campaign_id,
        "GroupName": settings.schedule_group,
        "ScheduleExpression": f"at({when})",
        "ScheduleExpressionTimezone": "UTC",
        "FlexibleTimeWindow": FLEXIBLE_WINDOW,
        "ActionAfterCompletion": "DELETE",
        "Target": _release_target(start_message(pk, start_at)),
    }
    _create_or_update(request)


def _release_target(message: dict[str, Any]) -> dict[str, Any]:
    """A schedule's target: `message` to the release queue, as the template's role."""
    settings = get_settings()
    return {
        "Arn": settings.release_queue_arn,
        "RoleArn": settings.scheduler_role_arn,
        "Input": json.dumps(message),
        "RetryPolicy": {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400},
    }


def _create_or_update(request: dict[str, Any]) -> None:
    """Create the schedule, or replace it if one of its name exists."""
    try:
        scheduler().create_schedule(**request)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConflictException":
            raise
        scheduler().update_schedule(**request)


def delete_start(campaign_id: str) -> None:
    """Delete the campaign's start schedule (gone already, e.g. after it fired: nothing to do)."""
    try:
        scheduler().delete_schedule(Name=campaign_id, GroupName=get_settings().schedule_group)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise


def get_start(campaign_id: str) -> dict[str, Any] | None:
    """The campaign's start schedule as Scheduler holds it, or None."""
    try:
        return dict(scheduler().get_schedule(Name=campaign_id, GroupName=get_settings().schedule_group))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        return None


# EventBridge Scheduler puts the occurrence's time in the target's input where this context attribute is.
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"


def runs_name(campaign_id: str) -> str:
    return f"{campaign_id}-runs"


def occurrence_message(pk: str, occurrence: str) -> dict[str, Any]:
    """What the recurring schedule sends to the release queue at each occurrence (the release worker starts
    a run): `occurrence` is its scheduled time, ISO 8601 in UTC."""
    return {"campaign": pk, "occurrence": occurrence}


def put_runs(
    campaign_id: str,
    pk: str,
    expression: str,
    timezone: str,
    start_date: float | None = None,
    end_date: float | None = None,
) -> None:
    """Create the recurring campaign's schedule, or change it if it exists."""
    settings = get_settings()
    request: dict[str, Any] = {
        "Name": runs_name(campaign_id),
        "GroupName": settings.schedule_group,
        "ScheduleExpression": expression,
        "ScheduleExpressionTimezone": timezone,
        "FlexibleTimeWindow": FLEXIBLE_WINDOW,
        "Target": _release_target(occurrence_message(pk, SCHEDULED_TIME)),
    }
    if start_date is not None and start_date > time.time():  # Scheduler refuses a start date in the past
        request["StartDate"] = datetime.fromtimestamp(start_date, UTC)
    if end_date is not None:
        request["EndDate"] = datetime.fromtimestamp(end_date, UTC)
    _create_or_update(request)


def delete_runs(campaign_id: str) -> None:
    """Delete the recurring campaign's schedule (gone already: nothing to do)."""
    delete_start(runs_name(campaign_id))


def get_runs(campaign_id: str) -> dict[str, Any] | None:
    return get_start(runs_name(campaign_id))
