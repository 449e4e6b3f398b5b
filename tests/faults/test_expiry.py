"""`expires_at`: nothing is sent from then on; recipients not reached (never released, released but not
claimed, or waiting for a retry) are `expired`, and so is the campaign, with counters that add up."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.faults.harness import Harness
from tests.utils import campaign_body

pytestmark = pytest.mark.faults

FINAL = ("succeeded", "failed", "unknown", "skipped", "expired")


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


def ends_expired(harness: Harness, campaign: dict[str, Any], recipients: int) -> dict[str, Any]:
    final = harness.run(campaign["id"])
    assert final["status"] == "expired", final
    counters = final["counters"]
    assert counters["total"] == recipients == sum(counters[k] for k in FINAL)
    assert counters["queued"] == counters["in_flight"] == 0
    recount = harness.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/recount")
    assert recount["drift"] == {} and recount["after"] == counters, recount
    assert harness.provider.stats()["duplicates"] == 0
    return dict(counters)


def expire_soon(harness: Harness, campaign: dict[str, Any], seconds: float = 2.0) -> float:
    """Set the campaign's expiry `seconds` from now and wait until it passed; returns it. It is stored to the
    second (truncated): two seconds leave the PATCH at least one to arrive before it (one second did not, on
    a busy machine: a 422 "must be in the future")."""
    expires_at = time.time() + seconds
    changed = harness.tenant.ok("PATCH", f"/v1/campaigns/{campaign['id']}", {"expires_at": iso(expires_at)})
    assert changed["expires_at"] == iso(int(expires_at)).replace("+00:00", "Z")
    time.sleep(max(0.0, int(expires_at) + 1 - time.time()))  # stored to the second
    return int(expires_at)


def test_a_campaign_past_its_expiry_sends_nothing_more_and_the_rest_expire(harness: Harness) -> None:
    campaign = harness.campaign(60, rate_per_second=5)
    harness.run(campaign["id"], rounds=3)  # some sent, most not released yet at 5/s
    assert 0 < len(harness.provider.messages()) < 60
    expires_at = expire_soon(harness, campaign)
    counters = ends_expired(harness, campaign, 60)
    sent = harness.provider.messages()
    assert counters["succeeded"] == len(sent) < 60
    assert counters["expired"] == 60 - len(sent)
    # A send claimed just before the expiry may land after it: within one provider timeout (1 s here).
    assert max(m["accepted_at"] for m in sent) < expires_at + 2
    outcomes = harness.outcomes(campaign["id"])  # released ones that expired have a delivery; the rest none
    assert {o["state"] for o in outcomes} <= {"succeeded", "expired"}


def test_a_retry_waiting_past_the_expiry_is_expired_not_sent(harness: Harness) -> None:
    harness.provider.configure(transient_failure_rate=1.0)
    policy = {"max_attempts": 3, "initial_delay_seconds": 600, "max_delay_seconds": 600}
    campaign = harness.campaign(5, retry_policy=policy)
    waiting = harness.run(campaign["id"], rounds=2)
    assert waiting["status"] == "running" and harness.provider.stats()["transient_failures"] == 5
    expire_soon(harness, campaign)
    counters = ends_expired(harness, campaign, 5)
    assert counters["expired"] == 5 and counters["failed"] == 0
    assert harness.provider.stats()["transient_failures"] == 5  # one try each, no retry after the expiry
    one = harness.outcomes(campaign["id"])[0]
    assert one["state"] == "expired" and "expires_at" in one["last_error"]
    assert [a["outcome"] for a in one["history"]] == ["retry"]


def test_expires_at_must_be_in_the_future_and_after_the_start(harness: Harness) -> None:
    listed = harness.tenant.ok("POST", "/v1/lists", {"name": "x"}, status=201)
    body = campaign_body(listed["id"])
    past = harness.tenant.call("POST", "/v1/campaigns", {**body, "expires_at": iso(time.time() - 5)})
    assert past.status_code == 422 and json.loads(past.body)["errors"][0]["field"] == "expires_at"
    start_at = time.time() + 3600
    early = {**body, "start_at": iso(start_at), "expires_at": iso(start_at - 60)}
    before = harness.tenant.call("POST", "/v1/campaigns", early)
    assert before.status_code == 422 and "after start_at" in json.loads(before.body)["errors"][0]["reason"]
    created = harness.tenant.ok("POST", "/v1/campaigns", {**early, "expires_at": iso(start_at + 60)}, status=201)
    clone = harness.tenant.ok("POST", f"/v1/campaigns/{created['id']}/clone", status=201)
    assert clone["expires_at"] is None and clone["start_at"] is None


def test_a_paused_campaign_takes_a_new_expiry_and_expires_on_resume(harness: Harness) -> None:
    campaign = harness.campaign(40, rate_per_second=5)
    harness.run(campaign["id"], rounds=2)
    harness.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/pause")
    harness.run(campaign["id"], rounds=2)  # what was released is parked
    sent_before = len(harness.provider.messages())
    expire_soon(harness, campaign)
    assert harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")["status"] == "paused"
    harness.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/resume")
    counters = ends_expired(harness, campaign, 40)
    assert len(harness.provider.messages()) == sent_before == counters["succeeded"]  # nothing after resume
    assert counters["expired"] == 40 - sent_before
