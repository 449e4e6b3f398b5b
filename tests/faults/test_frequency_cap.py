"""Frequency caps across campaigns: two campaigns to the same numbers, sent at the same time, each number
gets at most the cap's worth of messages; the rest are skipped with reason `capped`."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.faults.harness import Harness
from tests.utils import recipient_rows

pytestmark = pytest.mark.faults


def test_two_concurrent_campaigns_to_the_same_numbers_hold_an_account_cap_of_one_a_day(harness: Harness) -> None:
    cap = {"max_messages": 1, "period_days": 1}
    rows = recipient_rows(20)
    first = harness.campaign(rows, frequency_cap=cap)
    second = harness.campaign(rows, frequency_cap=cap, template="Second: hi {{ first_name }}")
    assert first["frequency_cap"] == {**cap, "scope": "account"}
    harness.run(first["id"])
    harness.run(second["id"])  # both were released and dispatched in the same rounds
    finals = [harness.tenant.ok("GET", f"/v1/campaigns/{c['id']}") for c in (first, second)]
    assert [f["status"] for f in finals] == ["completed", "completed"]
    per_number = Counter(m["to"] for m in harness.provider.messages())
    assert len(per_number) == 20 and set(per_number.values()) == {1}, "the cap is one message per number"
    assert sum(f["counters"]["succeeded"] for f in finals) == 20
    assert sum(f["counters"]["skipped"] for f in finals) == 20
    assert sum(f["counters"]["skipped_by_reason"].get("capped", 0) for f in finals) == 20
    skipped = [o for c in (first, second) for o in harness.outcomes(c["id"]) if o["state"] == "skipped"]
    assert {o["skip_reason"] for o in skipped} == {"capped"}


def test_a_category_cap_counts_only_its_category_and_no_cap_counts_nothing(harness: Harness) -> None:
    rows = recipient_rows(5)
    scoped = {"max_messages": 1, "period_days": 7, "scope": "category"}
    marketing_window = {"start": "00:00", "end": "23:59"}  # marketing without its 08:00-21:00 default
    harness.run(harness.campaign(rows, frequency_cap=scoped, category="marketing", window=marketing_window)["id"])
    transactional = harness.campaign(rows, frequency_cap=scoped, template="Your code, {{ first_name }}")
    uncapped = harness.campaign(rows, template="No cap, {{ first_name }}")
    for campaign in (transactional, uncapped):
        final = harness.run(campaign["id"])
        assert final["counters"]["succeeded"] == 5 and final["counters"]["skipped"] == 0
    assert Counter(Counter(m["to"] for m in harness.provider.messages()).values()) == {3: 5}
