"""Scheduled starts: `start_at` makes a campaign `scheduled` with a one-time EventBridge Scheduler schedule
(held by moto) whose target sends the start to the release queue; rescheduling moves it, unscheduling,
cancelling, deleting or starting by hand removes it; the message starts the campaign only if it is still
scheduled for that time."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from tests.utils import Api, campaign_body, recipient_rows, run_release_jobs

pytestmark = pytest.mark.integration


def in_seconds(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def new_list(tenant: Api, rows: int = 4) -> str:
    listed = tenant.ok("POST", "/v1/lists", {"name": "people"}, status=201)
    if rows:
        tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": recipient_rows(rows)})
    return str(listed["id"])


def schedule_of(env: dict[str, str], campaign_id: str) -> dict[str, Any] | None:
    scheduler = boto3.client("scheduler", region_name="us-east-1")
    try:
        return dict(scheduler.get_schedule(Name=campaign_id, GroupName=env["SCHEDULE_GROUP"]))
    except scheduler.exceptions.ResourceNotFoundException:
        return None


def fire(env: dict[str, str], campaign_id: str) -> None:
    """What Scheduler does at the schedule's time: send its target's Input to the queue, then delete it."""
    schedule = schedule_of(env, campaign_id)
    assert schedule is not None
    sqs = boto3.client("sqs", region_name="us-east-1")
    assert schedule["Target"]["Arn"] == env["RELEASE_QUEUE_ARN"]
    sqs.send_message(QueueUrl=env["RELEASE_QUEUE_URL"], MessageBody=schedule["Target"]["Input"])
    boto3.client("scheduler", region_name="us-east-1").delete_schedule(
        Name=campaign_id, GroupName=env["SCHEDULE_GROUP"]
    )


def test_a_campaign_with_a_start_time_is_scheduled_and_its_schedule_starts_it(
    chalice_app: Any, aws_env: dict[str, str], tenant: Api
) -> None:
    list_id = new_list(tenant)
    created = tenant.ok("POST", "/v1/campaigns", campaign_body(list_id, start_at=in_seconds(3600)), status=201)
    assert created["status"] == "scheduled" and created["start_at"] is not None
    schedule = schedule_of(aws_env, created["id"])
    assert schedule is not None
    start_at = datetime.fromisoformat(created["start_at"])
    assert schedule["ScheduleExpression"] == f"at({start_at.astimezone(UTC):%Y-%m-%dT%H:%M:%S})"
    assert schedule["ActionAfterCompletion"] == "DELETE"
    assert schedule["Target"]["RoleArn"] == aws_env["SCHEDULER_ROLE_ARN"]
    assert json.loads(schedule["Target"]["Input"])["start_at"] == int(start_at.timestamp())
    assert [c["id"] for c in tenant.ok("GET", "/v1/campaigns?status=scheduled")["items"]] == [created["id"]]

    run_release_jobs(chalice_app, aws_env["RELEASE_QUEUE_URL"])  # the tick's jobs do not start it
    assert tenant.ok("GET", f"/v1/campaigns/{created['id']}")["status"] == "scheduled"

    fire(aws_env, created["id"])
    assert run_release_jobs(chalice_app, aws_env["RELEASE_QUEUE_URL"]) == 1
    started = tenant.ok("GET", f"/v1/campaigns/{created['id']}")
    assert started["status"] == "running" and started["counters"]["total"] == 4
    assert started["started_late_seconds"] is None  # started before its time here: not late


def test_rescheduling_moves_the_schedule_and_the_old_time_starts_nothing(
    chalice_app: Any, aws_env: dict[str, str], tenant: Api
) -> None:
    list_id = new_list(tenant)
    created = tenant.ok("POST", "/v1/campaigns", campaign_body(list_id, start_at=in_seconds(3600)), status=201)
    path = f"/v1/campaigns/{created['id']}"
    old_input = schedule_of(aws_env, created["id"])["Target"]["Input"]  # type: ignore[index]

    moved = tenant.ok("PATCH", path, {"start_at": in_seconds(7200), "template": "Later {{ first_name }}"})
    assert moved["status"] == "scheduled" and moved["template"] == "Later {{ first_name }}"
    assert moved["start_at"] != created["start_at"]
    new_input = schedule_of(aws_env, created["id"])["Target"]["Input"]  # type: ignore[index]
    assert json.loads(new_input)["start_at"] == int(datetime.fromisoformat(moved["start_at"]).timestamp())

    # A message of the old time (sent before the move) finds the campaign scheduled for another time.
    boto3.client("sqs", region_name="us-east-1").send_message(
        QueueUrl=aws_env["RELEASE_QUEUE_URL"], MessageBody=old_input
    )
    run_release_jobs(chalice_app, aws_env["RELEASE_QUEUE_URL"])
    assert tenant.ok("GET", path)["status"] == "scheduled"

    unscheduled = tenant.ok("PATCH", path, {"start_at": None})
    assert (unscheduled["status"], unscheduled["start_at"]) == ("draft", None)
    assert schedule_of(aws_env, created["id"]) is None
    boto3.client("sqs", region_name="us-east-1").send_message(
        QueueUrl=aws_env["RELEASE_QUEUE_URL"], MessageBody=new_input
    )
    run_release_jobs(chalice_app, aws_env["RELEASE_QUEUE_URL"])
    assert tenant.ok("GET", path)["status"] == "draft"


@pytest.mark.parametrize("how", ["cancel", "delete", "start"])
def test_cancelling_deleting_or_starting_by_hand_removes_the_schedule(
    aws_env: dict[str, str], tenant: Api, how: str
) -> None:
    list_id = new_list(tenant)
    created = tenant.ok("POST", "/v1/campaigns", campaign_body(list_id, start_at=in_seconds(600)), status=201)
    path = f"/v1/campaigns/{created['id']}"
    if how == "delete":
        assert tenant.call("DELETE", path).status_code == 204
    else:
        assert tenant.ok("POST", f"{path}/{how}")["status"] == {"cancel": "cancelled", "start": "running"}[how]
    assert schedule_of(aws_env, created["id"]) is None


def test_a_late_start_is_reported_and_an_empty_list_returns_it_to_draft(
    chalice_app: Any, aws_env: dict[str, str], tenant: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    list_id, empty = new_list(tenant), new_list(tenant, rows=0)
    late = tenant.ok("POST", "/v1/campaigns", campaign_body(list_id, start_at=in_seconds(100)), status=201)
    nobody = tenant.ok("POST", "/v1/campaigns", campaign_body(empty, start_at=in_seconds(100)), status=201)
    fire(aws_env, late["id"])
    fire(aws_env, nobody["id"])
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 400)  # the message is handled 5 minutes after its time
    run_release_jobs(chalice_app, aws_env["RELEASE_QUEUE_URL"])
    monkeypatch.setattr(time, "time", real)

    started = tenant.ok("GET", f"/v1/campaigns/{late['id']}")
    assert started["status"] == "running" and 295 <= started["started_late_seconds"] <= 310
    back = tenant.ok("GET", f"/v1/campaigns/{nobody['id']}")
    assert back["status"] == "draft" and "no recipients" in back["start_problem"]


def test_start_times_are_checked(tenant: Api) -> None:
    list_id = new_list(tenant)
    for start_at in (in_seconds(-60), in_seconds(400 * 86400), "2026-12-01T09:00:00", "tomorrow"):
        answer = tenant.call("POST", "/v1/campaigns", campaign_body(list_id, start_at=start_at))
        assert answer.status_code == 422, (start_at, answer.body)
        assert json.loads(answer.body)["errors"][0]["field"] == "start_at"
    assert tenant.ok("GET", "/v1/campaigns")["items"] == []
