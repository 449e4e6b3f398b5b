"""A/B variants through the handlers: each recipient gets its variant's template and sender (the same as the
assignment function says), held-out recipients are skipped, and the campaign counts per variant."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from chalicelib.domain.variants import HELD_OUT, assign
from tests.faults.harness import Harness
from tests.utils import campaign_body

pytestmark = pytest.mark.faults

ARMS = [
    {"name": "short", "weight": 60, "template": "A: hi {{ first_name }}"},
    {"name": "long", "weight": 40, "template": "B: hello {{ first_name }}, 20% off", "sender": "AcmeB"},
]


def test_variants_send_their_own_text_and_sender_hold_out_a_share_and_are_counted_apart(harness: Harness) -> None:
    campaign = harness.campaign(100, variants=ARMS, holdout_percent=20)
    final = harness.run(campaign["id"])
    counters = harness.settle(final, 100)
    expected = Counter(
        HELD_OUT if (a := assign(campaign["id"], o["recipient_id"], ARMS, 20)) == HELD_OUT else a["name"]  # type: ignore[index]
        for o in harness.outcomes(campaign["id"])
    )
    assert counters["skipped"] == expected[HELD_OUT] > 0
    assert counters["skipped_by_reason"] == {"held_out": expected[HELD_OUT]}
    sent = harness.provider.messages()
    assert Counter(m["text"][0] for m in sent) == {"A": expected["short"], "B": expected["long"]}
    assert {m["from"] for m in sent if m["text"].startswith("B")} == {"AcmeB"}
    assert {m["from"] for m in sent if m["text"].startswith("A")} == {"Acme"}
    by_variant = final["variant_counters"]
    assert by_variant["short"]["succeeded"] == expected["short"] and by_variant["long"]["succeeded"] == expected["long"]
    assert by_variant["short"]["in_flight"] == by_variant["long"]["in_flight"] == 0
    held = [o for o in harness.outcomes(campaign["id"]) if o["state"] == "skipped"]
    assert {o["skip_reason"] for o in held} == {"held_out"}


def test_weights_that_do_not_add_up_to_100_are_refused_naming_variants(harness: Harness) -> None:
    listed = harness.tenant.ok("POST", "/v1/lists", {"name": "ab"}, status=201)
    for arms, reason in (
        ([{"name": "a", "weight": 60}, {"name": "b", "weight": 30}], "add up to 100"),
        ([{"name": "a", "weight": 50}, {"name": "a", "weight": 50}], "unique"),
    ):
        answer = harness.tenant.call("POST", "/v1/campaigns", campaign_body(listed["id"], variants=arms))
        problem = json.loads(answer.body)
        assert answer.status_code == 422 and problem["errors"][0]["field"] == "variants", problem
        assert reason in problem["errors"][0]["reason"]


def test_recipients_parked_by_a_pause_keep_their_variant_and_the_counters_per_variant_add_up(harness: Harness) -> None:
    campaign = harness.campaign(60, rate_per_second=20, variants=ARMS, holdout_percent=10)
    harness.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/pause")
    harness.run(campaign["id"], rounds=3)  # what was released is parked, held-out ones skipped
    harness.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/resume")
    final = harness.run(campaign["id"])
    counters = harness.settle(final, 60)
    by_variant = final["variant_counters"]
    assert all(value >= 0 for counts in by_variant.values() for value in counts.values()), by_variant
    assert by_variant["short"]["succeeded"] + by_variant["long"]["succeeded"] == counters["succeeded"]
    assert by_variant["short"]["waiting"] == by_variant["long"]["waiting"] == 0
    held = sum(1 for o in harness.outcomes(campaign["id"]) if o.get("skip_reason") == "held_out")
    assert held == counters["skipped"] and counters["succeeded"] + held == 60
