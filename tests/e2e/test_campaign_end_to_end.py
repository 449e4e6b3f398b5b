"""The whole local stack on free ports: moto's server, chalice local, the event runner, the fake provider."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from infra.local.client import ApiError, CampaignApi, generated_recipients, valid_phone
from infra.local.stack import LocalStack

pytestmark = pytest.mark.e2e

ROWS, INVALID, DUPLICATES = 1_230, 18, 12
VALID = ROWS - INVALID - DUPLICATES


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(provider_rate_limit=400, provider_transient_failure_rate=0.05, seed=3) as running:
        yield running


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[CampaignApi]:
    client = CampaignApi.for_new_account(stack.api_url, stack.admin_token, name="e2e")
    yield client
    client.close()


def provider_messages(stack: LocalStack) -> dict[str, Any]:
    return dict(httpx.get(f"{stack.provider_url}/_fake/messages", timeout=30).json())


def accepted_count(stack: LocalStack) -> int:
    return int(httpx.get(f"{stack.provider_url}/_fake/stats", timeout=30).json()["accepted"])


def poll(api: CampaignApi, campaign_id: str, seen: list[dict[str, Any]]) -> dict[str, Any]:
    campaign = api.campaign(campaign_id)
    seen.append(campaign["counters"])
    return campaign


def wait_until_sending_stops(stack: LocalStack, quiet_seconds: float = 2.0, limit: float = 15.0) -> int:
    deadline = time.monotonic() + limit
    last, since = accepted_count(stack), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = accepted_count(stack)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_seconds:
            return now
    raise AssertionError(f"the provider kept receiving messages {limit} s after the pause")


def test_a_campaign_reaches_every_valid_recipient_once_with_pause_and_resume(
    stack: LocalStack, api: CampaignApi
) -> None:
    rows = generated_recipients(ROWS, invalid=INVALID, duplicates=DUPLICATES, seed=11)
    listed = api.create_list("e2e")
    (report,) = api.add_recipients(listed["id"], rows)
    assert (report["accepted"], report["invalid"], report["duplicates"]) == (VALID, INVALID, DUPLICATES)
    bad_rows = {r["index"] for r in report["rejected"] if r["reason"] == "invalid_phone"}
    assert bad_rows == {i for i, row in enumerate(rows) if not row["phone"].startswith("+1") or len(row["phone"]) != 12}

    campaign = api.create_campaign(
        {
            "name": "e2e",
            "list_id": listed["id"],
            "sender": "Acme",
            "template": "Hi {{ first_name }}, code {{ code }}",
            "rate_per_second": 150,
            "retry_policy": {"max_attempts": 6, "initial_delay_seconds": 1, "backoff_multiplier": 1},
        }
    )
    seen: list[dict[str, Any]] = []
    api.act(campaign["id"], "start")
    while poll(api, campaign["id"], seen)["counters"]["succeeded"] < VALID // 4:
        time.sleep(0.2)

    api.act(campaign["id"], "pause")
    at_pause = wait_until_sending_stops(stack)
    time.sleep(2)
    paused = poll(api, campaign["id"], seen)
    assert accepted_count(stack) == at_pause, "a paused campaign must not send"
    assert paused["status"] == "paused"
    assert at_pause < VALID

    api.act(campaign["id"], "resume")
    deadline = time.monotonic() + 180
    while (final := poll(api, campaign["id"], seen))["status"] != "completed":
        assert time.monotonic() < deadline, f"campaign did not complete: {final}"
        time.sleep(0.3)

    # queued is total minus the counted buckets, so the sum holds by construction; what can break is a
    # bucket going negative (a change counted twice or lost) or total drifting from the audience.
    for counters in seen:
        parts = sum(counters[k] for k in ("queued", "in_flight", "succeeded", "failed", "unknown"))
        assert parts == counters["total"] == VALID, counters
        assert min(v for v in counters.values() if isinstance(v, int)) >= 0, counters
        assert sum(counters["skipped_by_reason"].values()) == counters["skipped"], counters
    finished = [c["succeeded"] + c["failed"] + c["unknown"] for c in seen]
    assert finished == sorted(finished), "progress went backwards"

    recorded = provider_messages(stack)
    per_number = Counter(m["to"] for m in recorded["messages"])
    assert recorded["duplicates"] == 0
    assert set(per_number.values()) == {1}, "some recipient got the message twice"
    valid_numbers = {
        row["phone"].removeprefix("+") for row in rows if row["phone"].startswith("+1") and len(row["phone"]) == 12
    }
    counters = final["counters"]
    assert counters["total"] == VALID
    assert counters["succeeded"] == len(per_number) == accepted_count(stack)
    assert counters["succeeded"] + counters["failed"] == VALID
    assert counters["unknown"] == 0  # no worker died: nothing is ambiguous
    assert set(per_number) <= valid_numbers

    outcomes = api.outcomes(campaign["id"])
    assert len(outcomes) == VALID
    succeeded = {o["destination"].removeprefix("+") for o in outcomes if o["state"] == "succeeded"}
    assert succeeded == set(per_number)
    texts = {m["to"]: m["text"] for m in recorded["messages"]}
    sample = next(row for row in rows if row["phone"].removeprefix("+") in texts)
    assert (
        texts[sample["phone"].removeprefix("+")]
        == f"Hi {sample['params']['first_name']}, code {sample['params']['code']}"
    )

    # The event log (the runner's second consumer of the deliveries stream) has one event per finished one.
    logged: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while len(logged) < counters["succeeded"] and time.monotonic() < deadline:
        logged = api.all_pages("/v1/events", campaign_id=campaign["id"], type="delivery.succeeded")
        time.sleep(0.5)
    assert sorted(e["recipient_id"] for e in logged) == sorted(
        o["recipient_id"] for o in outcomes if o["state"] == "succeeded"
    )


def test_bad_input_over_http_is_problem_json_and_changes_nothing(stack: LocalStack, api: CampaignApi) -> None:
    listed = api.create_list("bad input")
    answer = api.http.post(
        f"/v1/lists/{listed['id']}/recipients",
        content=b'{"recipients": [',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    campaign = api.create_campaign({"name": "x", "list_id": listed["id"], "sender": "Acme", "template": "Hi"})
    with pytest.raises(ApiError) as caught:
        api.act(campaign["id"], "start")
    assert caught.value.status_code == 422
    assert caught.value.problem["errors"][0]["field"] == "list_id"
    assert api.campaign(campaign["id"])["status"] == "draft"
    assert api.call("GET", f"/v1/lists/{listed['id']}")["recipient_count"] == 0


def test_a_scheduled_campaign_is_started_by_its_schedule_on_the_local_stack(api: CampaignApi) -> None:
    """moto holds the EventBridge Scheduler schedule; the event runner fires it at its time into the release
    queue, and the campaign starts and completes without anyone calling start."""
    from datetime import UTC, datetime, timedelta

    listed = api.create_list("scheduled")
    api.add_recipients(listed["id"], generated_recipients(20, seed=11))
    start_at = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0) + timedelta(seconds=1)
    campaign = api.create_campaign(
        {
            "name": "scheduled",
            "list_id": listed["id"],
            "sender": "Acme",
            "template": "Hi {{ first_name }}",
            "rate_per_second": 50,
            "start_at": start_at.isoformat(),
        }
    )
    assert campaign["status"] == "scheduled"
    deadline = time.monotonic() + 60
    while (current := api.campaign(campaign["id"]))["status"] != "completed":
        assert time.monotonic() < deadline, f"not completed a minute after its start time: {current}"
        time.sleep(0.25)
    assert datetime.fromisoformat(current["started_at"]) >= start_at  # not before its time
    assert current["counters"]["total"] == current["counters"]["succeeded"] + current["counters"]["failed"] == 20


def test_a_recurring_campaign_s_schedule_starts_a_run_on_the_local_stack(api: CampaignApi) -> None:
    """The recurring schedule (moto holds it, the event runner fires its rate) sends an occurrence; a run of
    the campaign starts and completes, listed under the recurring campaign, which stays scheduled."""
    from datetime import UTC, datetime, timedelta

    listed = api.create_list("recurring")
    api.add_recipients(listed["id"], generated_recipients(20, seed=12))
    first = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
    campaign = api.create_campaign(
        {
            "name": "recurring",
            "list_id": listed["id"],
            "sender": "Acme",
            "template": "Hi {{ first_name }}",
            "rate_per_second": 50,
            "recurrence": {"expression": "rate(1 hour)", "start_date": first.isoformat()},
        }
    )
    assert campaign["status"] == "scheduled"
    deadline = time.monotonic() + 60
    while not (runs := api.call("GET", f"/v1/campaigns/{campaign['id']}/runs")["items"]) or runs[0]["status"] != (
        "completed"
    ):
        assert time.monotonic() < deadline, f"no completed run a minute after the first occurrence: {runs}"
        time.sleep(0.25)
    [run] = runs
    assert run["occurrence_at"] == first.isoformat().replace("+00:00", "Z") and run["outcome"] == "started"
    assert run["counters"]["total"] == run["counters"]["succeeded"] + run["counters"]["failed"] == 20
    assert api.campaign(campaign["id"])["status"] == "scheduled"
    outcomes = api.call("GET", f"/v1/campaigns/{run['id']}/recipients?limit=100")["items"]
    assert len(outcomes) == 20 and {o["state"] for o in outcomes} <= {"succeeded", "failed"}


def test_a_voice_campaign_s_calls_end_by_their_signed_events_over_http(stack: LocalStack, api: CampaignApi) -> None:
    """The fake provider posts each call's events, signed, to chalice local; busy and unanswered calls are
    tried again per the retry policy, and every recipient ends with exactly the calls its attempts made."""
    httpx.post(
        f"{stack.provider_url}/_fake/voice",
        json={"outcomes": {"completed": 0.7, "busy": 0.1, "timeout": 0.2}, "event_delay_ms": 20},
        timeout=10,
    ).raise_for_status()
    listed = api.create_list("callees")
    api.add_recipients(listed["id"], generated_recipients(20))
    body = {
        "name": "reminder calls",
        "list_id": listed["id"],
        "channel": "voice",
        "sender": "14155550100",
        "template": "Hello {{ first_name }}, your appointment is tomorrow at nine.",
        "voice": {"language": "en-US", "ringing_timer": 20},
        "rate_per_second": 20,
        "max_concurrent": 5,
        "retry_policy": {
            "max_attempts": 2,
            "initial_delay_seconds": 1,
            "backoff_multiplier": 1,
            "max_delay_seconds": 1,
        },
    }
    campaign = api.call("POST", "/v1/campaigns", body)
    api.call("POST", f"/v1/campaigns/{campaign['id']}/start")
    deadline = time.monotonic() + 120
    while (current := api.campaign(campaign["id"]))["status"] != "completed":
        assert time.monotonic() < deadline, current
        time.sleep(0.5)
    counters = current["counters"]
    assert counters["succeeded"] + counters["failed"] == 20 and counters["unknown"] == 0, counters
    placed = Counter(c["to"] for c in httpx.get(f"{stack.provider_url}/_fake/calls", timeout=30).json()["calls"])
    outcomes = api.call("GET", f"/v1/campaigns/{campaign['id']}/recipients?limit=100")["items"]
    assert {o["destination"].removeprefix("+"): o["attempts"] for o in outcomes} == dict(placed)
    calls = api.call("GET", f"/v1/calls?campaign_id={campaign['id']}&limit=100")["items"]
    assert Counter(c["outcome"] for c in calls) == Counter(
        {"succeeded": counters["succeeded"], "failed": counters["failed"]}
    )
    assert all(c["duration_seconds"] == 12 for c in calls if c["status"] == "completed")


def test_three_segments_send_three_channels_each_to_its_own_recipients(stack: LocalStack, api: CampaignApi) -> None:
    """Gold members get a call, silver members an HTTP action (a CRM task), everyone else the campaign's SMS:
    each recipient reached once, on its segment's channel only."""
    from infra.local.fake_endpoint import FakeEndpoint

    rows = [
        {"phone": valid_phone(900 + n), "params": {"first_name": f"M{n}", "tier": ["gold", "silver", "bronze"][n % 3]}}
        for n in range(30)
    ]
    with FakeEndpoint() as endpoint:
        action = api.call(
            "POST",
            "/v1/actions",
            {"name": "crm task", "url": endpoint.base_url + "/tasks", "body": '{"text": {{ message | json }}}'},
        )
        listed = api.create_list("tiers")
        api.add_recipients(listed["id"], rows)
        body = {
            "name": "tiered",
            "list_id": listed["id"],
            "sender": "Acme",
            "template": "Hi {{ first_name }}, your points expire soon.",
            "rate_per_second": 50,
            # This stack's provider fails 5% of SMS sends with a 503: tried again.
            "retry_policy": {
                "max_attempts": 5,
                "initial_delay_seconds": 1,
                "backoff_multiplier": 1,
                "max_delay_seconds": 1,
            },
            "segments": [
                {
                    "name": "gold",
                    "conditions": [{"field": "attributes.tier", "op": "eq", "value": "gold"}],
                    "channel": "voice",
                    "sender": "14155550100",
                    "voice": {"language": "en-US"},
                },
                {
                    "name": "silver",
                    "conditions": [{"field": "attributes.tier", "op": "eq", "value": "silver"}],
                    "channel": "http",
                    "action_id": action["id"],
                    "template": "Call {{ first_name }} about their points",
                },
            ],
        }
        httpx.post(f"{stack.provider_url}/_fake/voice", json={"outcomes": {"completed": 1.0}}, timeout=10)
        calls_before = len(httpx.get(f"{stack.provider_url}/_fake/calls", timeout=30).json()["calls"])
        sms_before = {m["message_uuid"] for m in provider_messages(stack)["messages"]}
        campaign = api.call("POST", "/v1/campaigns", body)
        api.call("POST", f"/v1/campaigns/{campaign['id']}/start")
        deadline = time.monotonic() + 120
        while (current := api.campaign(campaign["id"]))["status"] != "completed":
            assert time.monotonic() < deadline, current
            time.sleep(0.5)
        tasks = [json.loads(r["body"])["text"] for r in endpoint.requests]
    assert current["counters"]["succeeded"] == 30, current["counters"]
    by_tier = {tier: {valid_phone(900 + n).removeprefix("+") for n in range(30) if n % 3 == i} for i, tier in
               enumerate(["gold", "silver", "bronze"])}  # fmt: skip
    called = [
        c["to"] for c in httpx.get(f"{stack.provider_url}/_fake/calls", timeout=30).json()["calls"][calls_before:]
    ]
    texted = [m["to"] for m in provider_messages(stack)["messages"] if m["message_uuid"] not in sms_before]
    assert sorted(called) == sorted(by_tier["gold"])
    assert sorted(texted) == sorted(by_tier["bronze"])
    assert sorted(tasks) == sorted(f"Call M{n} about their points" for n in range(30) if n % 3 == 1)
    segments = current["segment_counters"]
    assert (segments["gold"]["succeeded"], segments["silver"]["succeeded"]) == (10, 10)
