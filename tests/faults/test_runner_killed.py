"""The event runner (Lambda's event source mappings) killed with SIGKILL mid-campaign, on the whole local
stack, and started again: the campaign completes, nothing is sent twice, counters equal a recount."""

from __future__ import annotations

import time
from collections import Counter

import boto3
import httpx
import pytest

from infra.local.client import CampaignApi, generated_recipients
from infra.local.stack import LocalStack

pytestmark = pytest.mark.faults

RECIPIENTS = 600
# What SQS holds back after a consumer dies is its visibility timeout (9 minutes for dispatch in AWS);
# shortened on this stack so the test does not wait for it.
VISIBILITY_SECONDS = "5"


def stuck(api: CampaignApi, campaign: dict[str, object]) -> str:
    """What a user would look at when a campaign does not finish: its counters, a recount's drift, and the
    recipients not in a final state."""
    campaign_id = str(campaign["id"])
    recount = api.call("POST", f"/v1/campaigns/{campaign_id}/recount")
    open_ones = [o for o in api.outcomes(campaign_id) if o["state"] not in {"succeeded", "failed", "unknown"}]
    return f"counters {campaign['counters']}, recount drift {recount['drift']}, not final {open_ones}"


def test_the_runner_killed_mid_campaign_and_restarted_finishes_it_without_resending() -> None:
    with LocalStack(runner_process=True, provider_rate_limit=0, provider_transient_failure_rate=0.02, seed=5) as stack:
        sqs = boto3.client("sqs", endpoint_url=stack.aws_endpoint_url, region_name="us-east-1")
        for url in sqs.list_queues()["QueueUrls"]:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": VISIBILITY_SECONDS})
        api = CampaignApi.for_new_account(stack.api_url, stack.admin_token, name="killed")
        listed = api.create_list("killed")
        api.add_recipients(listed["id"], generated_recipients(RECIPIENTS))
        campaign = api.create_campaign(
            {
                "name": "killed",
                "list_id": listed["id"],
                "sender": "Acme",
                "template": "Hi {{ first_name }}",
                "rate_per_second": 100,
                "retry_policy": {"max_attempts": 5, "initial_delay_seconds": 1, "backoff_multiplier": 1},
            }
        )
        api.act(campaign["id"], "start")
        deadline = time.monotonic() + 120
        while api.campaign(campaign["id"])["counters"]["succeeded"] < RECIPIENTS // 4:
            assert time.monotonic() < deadline, "the campaign did not get going"
            time.sleep(0.1)

        stack.kill_runner()  # mid-campaign: batches in the middle of sending die with it
        killed_at = api.campaign(campaign["id"])["counters"]
        time.sleep(2)
        stack.restart_runner()

        deadline = time.monotonic() + 240
        while (final := api.campaign(campaign["id"]))["status"] != "completed":
            assert time.monotonic() < deadline, f"not completed after the restart: {stuck(api, final)}"
            time.sleep(0.5)

        outcomes = api.outcomes(campaign["id"])
        assert len(outcomes) == RECIPIENTS == len({o["recipient_id"] for o in outcomes})
        states = Counter(o["state"] for o in outcomes)
        assert set(states) <= {"succeeded", "failed", "unknown"}
        stats = httpx.get(f"{stack.provider_url}/_fake/stats", timeout=30).json()
        assert stats["duplicates"] == 0 and stats["accepted"] == stats["unique_recipients"]
        counters = final["counters"]
        assert {k: counters[k] for k in ("succeeded", "failed", "unknown")} == {
            k: states.get(k, 0) for k in ("succeeded", "failed", "unknown")
        }
        assert counters["succeeded"] + counters["unknown"] >= killed_at["succeeded"]
        recount = api.call("POST", f"/v1/campaigns/{campaign['id']}/recount")
        assert recount["drift"] == {}, recount
