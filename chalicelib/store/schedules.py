"""Scheduled starts as EventBridge Scheduler one-time schedules: `at(<UTC time>)`, one per campaign (named
by its id, in the stack's schedule group), whose target sends `{"campaign": pk, "start_at": <epoch>}` to
the release queue. The schedule deletes itself after it fires; rescheduling updates it, unscheduling,
cancelling or deleting the campaign deletes it.
"""

from __future__ import annotations

import json
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
        "Target": {
            "Arn": settings.release_queue_arn,
            "RoleArn": settings.scheduler_role_arn,
            "Input": json.dumps(start_message(pk, start_at)),
            "RetryPolicy": {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400},
        },
    }
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
