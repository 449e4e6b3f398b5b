"""Recurring campaigns: a cron or rate recurrence makes the campaign `scheduled` with a recurring EventBridge
Scheduler schedule (held by moto); each occurrence it sends to the release queue makes a run, a campaign of
its own listed under .../runs; an occurrence that finds the previous run going is skipped or queued."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest

from tests.utils import Api, campaign_body, recipient_rows, run_release_jobs

pytestmark = pytest.mark.integration

WEEKDAYS_9 = {"expression": "cron(0 9 ? * MON-FRI *)", "timezone": "America/New_York"}


def new_list(tenant: Api, rows: int = 3) -> str:
    listed = tenant.ok("POST", "/v1/lists", {"name": "people"}, status=201)
    if rows:
        tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": recipient_rows(rows)})
    return str(listed["id"])


def schedule_of(env: dict[str, str], campaign_id: str) -> dict[str, Any] | None:
    scheduler = boto3.client("scheduler", region_name="us-east-1")
    try:
        return dict(scheduler.get_schedule(Name=f"{campaign_id}-runs", GroupName=env["SCHEDULE_GROUP"]))
    except scheduler.exceptions.ResourceNotFoundException:
        return None


def occur(chalice_app: Any, env: dict[str, str], campaign_id: str, at: str) -> None:
    """What Scheduler does at an occurrence: send the target's Input, its scheduled time put in."""
    schedule = schedule_of(env, campaign_id)
    assert schedule is not None and schedule["Target"]["Arn"] == env["RELEASE_QUEUE_ARN"]
    body = schedule["Target"]["Input"].replace("<aws.scheduler.scheduled-time>", at)
    boto3.client("sqs", region_name="us-east-1").send_message(QueueUrl=env["RELEASE_QUEUE_URL"], MessageBody=body)
    run_release_jobs(chalice_app, env["RELEASE_QUEUE_URL"])


def runs(tenant: Api, campaign_id: str) -> list[dict[str, Any]]:
    return list(tenant.ok("GET", f"/v1/campaigns/{campaign_id}/runs?limit=50")["items"])


def recurring(tenant: Api, **recurrence: Any) -> dict[str, Any]:
    body = campaign_body(new_list(tenant), recurrence={**WEEKDAYS_9, **recurrence})
    return dict(tenant.ok("POST", "/v1/campaigns", body, status=201))


def test_a_recurring_campaign_is_scheduled_with_a_recurring_schedule_and_its_next_run(
    tenant: Api, aws_env: dict[str, str]
) -> None:
    created = recurring(tenant)
    assert created["status"] == "scheduled" and created["recurrence"]["overlap"] == "skip"
    next_run = datetime.fromisoformat(created["next_run_at"].replace("Z", "+00:00"))
    local = next_run.astimezone(ZoneInfo("America/New_York"))
    assert (local.hour, local.minute, local.weekday() < 5) == (9, 0, True)
    schedule = schedule_of(aws_env, created["id"])
    assert schedule is not None
    assert (schedule["ScheduleExpression"], schedule["ScheduleExpressionTimezone"]) == (
        "cron(0 9 ? * MON-FRI *)",
        "America/New_York",
    )
    assert json.loads(schedule["Target"]["Input"])["occurrence"] == "<aws.scheduler.scheduled-time>"
    answer = tenant.call("POST", f"/v1/campaigns/{created['id']}/start")
    assert answer.status_code == 409


def test_each_occurrence_starts_one_run_with_its_own_counters_and_a_repeat_changes_nothing(
    chalice_app: Any, tenant: Api, aws_env: dict[str, str]
) -> None:
    created = recurring(tenant)
    occur(chalice_app, aws_env, created["id"], "2026-11-26T14:00:00Z")
    occur(chalice_app, aws_env, created["id"], "2026-11-26T14:00:00Z")  # delivered twice
    [run] = runs(tenant, created["id"])
    assert (run["outcome"], run["status"], run["occurrence_at"]) == ("started", "running", "2026-11-26T14:00:00Z")
    assert run["counters"]["total"] == 3
    campaign = tenant.ok("GET", f"/v1/campaigns/{run['id']}")
    assert (campaign["run_of"], campaign["recurrence"]) == (created["id"], None)
    assert tenant.ok("GET", f"/v1/campaigns/{created['id']}/runs/{run['id']}")["id"] == run["id"]
    assert tenant.ok("GET", f"/v1/campaigns/{created['id']}")["status"] == "scheduled"
    # The event log takes the run (with its campaign, or alone); a run of another campaign is a 422.
    assert tenant.ok("GET", f"/v1/events?campaign_id={created['id']}&run_id={run['id']}")["items"] == []
    assert tenant.ok("GET", f"/v1/events?run_id={run['id']}")["items"] == []
    other = recurring(tenant)
    refused = tenant.call("GET", f"/v1/events?campaign_id={other['id']}&run_id={run['id']}")
    assert refused.status_code == 422 and "is not a run of" in refused.json_body["detail"], refused.body


def test_an_occurrence_finding_the_previous_run_going_is_skipped(
    chalice_app: Any, tenant: Api, aws_env: dict[str, str]
) -> None:
    created = recurring(tenant)
    occur(chalice_app, aws_env, created["id"], "2026-11-26T14:00:00Z")
    occur(chalice_app, aws_env, created["id"], "2026-11-27T14:00:00Z")
    first, second = runs(tenant, created["id"])
    assert (first["outcome"], second["outcome"], second["status"]) == ("started", "skipped", None)
    assert second["skip_reason"] == f"the previous run {first['id']} was still running"


def test_with_overlap_queue_one_run_waits_for_the_previous_and_starts_when_it_ends(
    chalice_app: Any, tenant: Api, aws_env: dict[str, str]
) -> None:
    created = recurring(tenant, overlap="queue")
    for day in (26, 27, 30):
        occur(chalice_app, aws_env, created["id"], f"2026-11-{day}T14:00:00Z")
    first, second, third = runs(tenant, created["id"])
    assert [r["outcome"] for r in (first, second, third)] == ["started", "queued", "skipped"]
    assert second["status"] == "draft" and "was queued" in third["skip_reason"]
    tenant.ok("POST", f"/v1/campaigns/{first['id']}/cancel")
    assert tenant.ok("GET", f"/v1/campaigns/{second['id']}")["status"] == "running"


def test_without_a_recurrence_the_campaign_is_a_draft_again_and_its_schedule_is_gone(
    tenant: Api, aws_env: dict[str, str]
) -> None:
    created = recurring(tenant)
    changed = tenant.ok("PATCH", f"/v1/campaigns/{created['id']}", {"recurrence": None})
    assert (changed["status"], changed["recurrence"], changed["next_run_at"]) == ("draft", None, None)
    assert schedule_of(aws_env, created["id"]) is None
    again = tenant.ok("PATCH", f"/v1/campaigns/{created['id']}", {"recurrence": {"expression": "rate(1 day)"}})
    assert again["status"] == "scheduled" and schedule_of(aws_env, created["id"]) is not None
    tenant.ok("POST", f"/v1/campaigns/{created['id']}/cancel")
    assert schedule_of(aws_env, created["id"]) is None


@pytest.mark.parametrize(
    ("recurrence", "field"),
    [
        ({"expression": "cron(0 9 * * MON-FRI *)"}, "recurrence.expression"),
        ({"expression": "every weekday"}, "recurrence.expression"),
        ({"expression": "rate(1 days)"}, "recurrence.expression"),
        ({"expression": "rate(1 day)", "timezone": "Mars/Olympus"}, "recurrence.timezone"),
        ({"expression": "rate(1 day)", "end_date": "2020-01-01T00:00:00Z"}, "recurrence.end_date"),
        ({"expression": "cron(0 9 1 1 ? 2020)"}, "recurrence.expression"),
    ],
)
def test_a_recurrence_aws_would_refuse_is_a_422_naming_the_field_and_creates_nothing(
    tenant: Api, aws_env: dict[str, str], recurrence: dict[str, Any], field: str
) -> None:
    list_id = new_list(tenant)
    answer = tenant.call("POST", "/v1/campaigns", campaign_body(list_id, recurrence=recurrence))
    assert answer.status_code == 422, answer.body
    assert [e["field"] for e in json.loads(answer.body)["errors"]] == [field]
    assert tenant.ok("GET", "/v1/campaigns")["items"] == []


def test_a_start_time_and_a_recurrence_exclude_each_other(tenant: Api) -> None:
    start_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    body = campaign_body(new_list(tenant), recurrence=WEEKDAYS_9, start_at=start_at)
    answer = tenant.call("POST", "/v1/campaigns", body)
    assert answer.status_code == 422 and json.loads(answer.body)["errors"][0]["field"] == "start_at"


def test_a_queued_run_cancelled_frees_its_place_and_one_of_a_campaign_that_stopped_recurring_never_starts(
    chalice_app: Any, tenant: Api, aws_env: dict[str, str]
) -> None:
    created = recurring(tenant, overlap="queue")
    occur(chalice_app, aws_env, created["id"], "2026-11-26T14:00:00Z")
    occur(chalice_app, aws_env, created["id"], "2026-11-27T14:00:00Z")
    first, second = runs(tenant, created["id"])
    tenant.ok("POST", f"/v1/campaigns/{second['id']}/cancel")  # the queued one
    occur(chalice_app, aws_env, created["id"], "2026-11-30T14:00:00Z")
    third = runs(tenant, created["id"])[2]
    assert (third["outcome"], third["status"]) == ("queued", "draft")

    tenant.ok("PATCH", f"/v1/campaigns/{created['id']}", {"recurrence": None})
    tenant.ok("POST", f"/v1/campaigns/{first['id']}/cancel")
    listed = runs(tenant, created["id"])
    assert [(r["outcome"], r["status"]) for r in listed] == [
        ("started", "cancelled"),
        ("queued", "cancelled"),
        ("skipped", "cancelled"),
    ]
    assert listed[2]["skip_reason"] == "the campaign stopped recurring"


def test_an_occurrence_on_an_empty_list_is_skipped_and_leaves_no_draft(
    chalice_app: Any, tenant: Api, aws_env: dict[str, str]
) -> None:
    body = campaign_body(new_list(tenant, rows=0), recurrence=WEEKDAYS_9)
    created = tenant.ok("POST", "/v1/campaigns", body, status=201)
    occur(chalice_app, aws_env, created["id"], "2026-11-26T14:00:00Z")
    [run] = runs(tenant, created["id"])
    assert (run["outcome"], run["status"]) == ("skipped", "cancelled") and "no recipients" in run["skip_reason"]
    drafts = tenant.ok("GET", "/v1/campaigns?status=draft")["items"]
    assert drafts == []
