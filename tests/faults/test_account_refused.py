"""Failures of the sender's account, not of a recipient: a provider that refuses the credentials (401) or
has no balance left (402) pauses the campaign with the reason shown, instead of failing every recipient
left one call each; resumed once fixed, the campaign sends the rest, each once. Throttling (429) is never
a recipient's failure, with or without a retry policy."""

from __future__ import annotations

from typing import Any

import pytest

from tests.faults.harness import Harness
from tests.utils import valid_phone

pytestmark = pytest.mark.faults


def paused_after(harness: Harness, campaign: dict[str, Any], rounds: int = 15) -> dict[str, Any]:
    current = harness.run(campaign["id"], rounds=rounds)
    assert current["status"] == "paused", current
    return current


def test_a_provider_out_of_balance_pauses_the_campaign_and_resume_sends_the_rest_once(harness: Harness) -> None:
    harness.provider.configure(balance_messages=12)
    campaign = harness.campaign(40, rate_per_second=50, retry_policy=None)
    paused = paused_after(harness, campaign)
    assert "balance" in paused["pause_reason"]
    counters = paused["counters"]
    assert counters["succeeded"] == 12 and counters["failed"] == 0, counters
    refused = harness.provider.stats()["failed_by_status"]["402"]
    assert 1 <= refused <= 10, "the sends under way when the first 402 came back, not one per recipient left"

    harness.provider.configure(balance_messages=None)  # topped up
    resumed = harness.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/resume")
    assert resumed["pause_reason"] is None
    final = harness.run(campaign["id"])
    assert harness.settle(final, 40)["succeeded"] == 40


def test_refused_credentials_pause_the_campaign_with_the_reason(harness: Harness) -> None:
    harness.provider.configure(fail_statuses={"401": 1.0})
    campaign = harness.campaign(20, retry_policy=None)
    paused = paused_after(harness, campaign)
    assert "credentials" in paused["pause_reason"]
    assert paused["counters"]["failed"] == 0 and paused["counters"]["queued"] == 20
    refused = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/recipients?limit=100")["items"]
    tried = [r for r in refused if r["state"] != "pending"]
    assert tried and all(r["history"][-1]["outcome"] == "account" for r in tried if r.get("history"))

    harness.provider.configure(fail_statuses={})
    harness.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/resume")
    final = harness.run(campaign["id"])
    assert harness.settle(final, 20)["succeeded"] == 20


def test_throttling_never_fails_a_recipient_even_without_retries(harness: Harness) -> None:
    throttled = valid_phone(0).removeprefix("+")
    harness.provider.configure(scripted_by_number={throttled: [429, 429, 429, 429]})
    campaign = harness.campaign(3, retry_policy=None)
    final = harness.run(campaign["id"])
    assert harness.settle(final, 3)["succeeded"] == 3
    got = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/recipients/{valid_phone(0)}")
    assert [(a["outcome"], a["try_number"]) for a in got["history"]] == [("throttled", 1)] * 4 + [("succeeded", 1)]


def test_credentials_the_provider_does_not_know_pause_the_campaign_without_failing_anyone(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.settings import get_settings

    monkeypatch.setenv("VONAGE_API_SECRET", "not-the-secret")
    get_settings.cache_clear()
    campaign = harness.campaign(10, retry_policy=None)
    paused = paused_after(harness, campaign)
    assert "credentials" in paused["pause_reason"]
    assert paused["counters"]["failed"] == 0 and harness.provider.messages() == []
