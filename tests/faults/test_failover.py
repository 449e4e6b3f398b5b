"""Retries per destination and failover across a recipient's destinations, with the provider's answers
scripted per number: every attempt is in the recipient's history, and nothing is sent twice."""

from __future__ import annotations

from typing import Any

import pytest

from infra.local.client import valid_phone
from tests.faults.harness import Harness

pytestmark = pytest.mark.faults


def three_phones(name: str, first: int) -> dict[str, Any]:
    return {
        "id": name,
        "destinations": [{"type": "phone", "address": valid_phone(first + n)} for n in range(3)],
        "attributes": {"first_name": name},
    }


def digits(n: int) -> str:
    return valid_phone(n).removeprefix("+")


def history(harness: Harness, campaign_id: str, recipient_id: str) -> list[tuple[Any, ...]]:
    got = harness.tenant.ok("GET", f"/v1/campaigns/{campaign_id}/recipients/{recipient_id}")
    return [(a["destination_index"], a["try_number"], a["outcome"], a["reason"]) for a in got["history"]]


def test_failover_across_three_destinations_follows_the_policy_and_records_every_attempt(harness: Harness) -> None:
    harness.provider.configure(
        scripted_by_number={
            # ana: the first number fails twice (its two tries), the second is refused, the third takes it
            digits(0): [503, 503],
            digits(1): [400],
            # bo: every number refused for good: failed with the last reason after three attempts
            digits(10): [400],
            digits(11): [400],
            digits(12): [400],
            # cy: throttled three times (more than its two tries: throttling is not counted), then accepted
            digits(20): [429, 429, 429],
        }
    )
    recipients = [three_phones("ana", 0), three_phones("bo", 10), three_phones("cy", 20)]
    policy = {"max_attempts": 2, "initial_delay_seconds": 1, "backoff_multiplier": 1, "max_delay_seconds": 1}
    campaign = harness.campaign(recipients, retry_policy=policy)
    final = harness.run(campaign["id"])
    counters = harness.settle(final, 3)
    assert (counters["succeeded"], counters["failed"]) == (2, 1)

    assert history(harness, campaign["id"], "ana") == [
        (0, 1, "retry", "provider_error"),
        (0, 2, "failover", "provider_error"),
        (1, 1, "failover", "rejected"),
        (2, 1, "succeeded", None),
    ]
    assert history(harness, campaign["id"], "bo") == [
        (0, 1, "failover", "rejected"),
        (1, 1, "failover", "rejected"),
        (2, 1, "failed", "rejected"),
    ]
    assert history(harness, campaign["id"], "cy") == [
        *[(0, 1, "throttled", "throttled")] * 3,
        (0, 1, "succeeded", None),
    ]
    outcomes = {o["recipient_id"]: o for o in harness.outcomes(campaign["id"])}
    assert (outcomes["ana"]["destination"], outcomes["ana"]["attempts"]) == (valid_phone(2), 4)
    assert outcomes["bo"]["state"] == "failed" and "400" in outcomes["bo"]["last_error"]
    assert [m["to"] for m in harness.provider.messages()].count(digits(2)) == 1


def test_outcomes_left_out_of_retry_on_fail_over_at_once_and_an_empty_failover_on_fails(harness: Harness) -> None:
    harness.provider.configure(scripted_by_number={digits(0): [503], digits(10): [503]})
    only_busy = {"max_attempts": 3, "initial_delay_seconds": 1, "retry_on": ["busy"]}
    campaign = harness.campaign([three_phones("ana", 0)], retry_policy=only_busy)
    harness.settle(harness.run(campaign["id"]), 1)
    assert history(harness, campaign["id"], "ana") == [(0, 1, "failover", "provider_error"), (1, 1, "succeeded", None)]

    no_failover = {"max_attempts": 1, "initial_delay_seconds": 1, "failover_on": []}
    campaign = harness.campaign([three_phones("bo", 10)], retry_policy=no_failover)
    final = harness.run(campaign["id"])
    assert final["counters"]["failed"] == 1
    assert history(harness, campaign["id"], "bo") == [(0, 1, "failed", "provider_error")]
