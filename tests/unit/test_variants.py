from collections import Counter

import pytest

from chalicelib.domain.variants import HELD_OUT, assign

pytestmark = pytest.mark.unit

ARMS = [{"name": "A", "weight": 70}, {"name": "B", "weight": 20}, {"name": "C", "weight": 10}]


def test_assignment_is_the_same_every_time_and_differs_between_campaigns() -> None:
    first = [assign("cmp_1", f"r{n}", ARMS, 10) for n in range(200)]
    assert first == [assign("cmp_1", f"r{n}", ARMS, 10) for n in range(200)]
    assert first != [assign("cmp_2", f"r{n}", ARMS, 10) for n in range(200)]


def test_shares_follow_the_holdout_then_the_weights() -> None:
    got = Counter(
        HELD_OUT if (a := assign("cmp_1", f"r{n}", ARMS, 20)) == HELD_OUT else a["name"]  # type: ignore[index]
        for n in range(20_000)
    )
    expected = {HELD_OUT: 0.20, "A": 0.56, "B": 0.16, "C": 0.08}
    for name, share in expected.items():
        assert abs(got[name] / 20_000 - share) < 0.015, (name, got)


def test_no_variants_and_no_holdout_assign_nothing_and_a_holdout_alone_holds_out() -> None:
    assert assign("cmp_1", "r1", [], 0) is None
    held = [assign("cmp_1", f"r{n}", [], 50) for n in range(1000)]
    assert set(held) == {HELD_OUT, None} and 400 < held.count(HELD_OUT) < 600
