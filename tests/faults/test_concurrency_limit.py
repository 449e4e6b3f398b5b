"""A campaign's concurrency limit (`max_concurrent`, VoIPBIN's service level): at most that many attempts
under way at once, counted at the provider, across dispatch invocations running at once; slots a dead
worker held come back when their lease ends; the limit is PATCHable while the campaign runs."""

from __future__ import annotations

import json
import time

import pytest

from tests.faults.harness import Harness
from tests.integration.test_release import campaign_pk
from tests.utils import LambdaContext

pytestmark = pytest.mark.faults


def test_at_most_max_concurrent_sends_are_under_way_across_invocations(harness: Harness) -> None:
    from chalicelib.store import slots

    harness.dispatch_invocations = 2
    harness.provider.configure(latency_ms=150)
    campaign = harness.campaign(40, max_concurrent=3)
    assert campaign["max_concurrent"] == 3
    final = harness.run(campaign["id"])
    assert harness.settle(final, 40)["succeeded"] == 40
    assert harness.provider.stats()["peak_in_flight"] == 3, "the limit, and all of it"
    assert slots.held(campaign_pk(harness.tenant, campaign), time.time()) == {}, "every slot was given back"


def test_without_a_limit_the_same_campaign_has_many_sends_under_way(harness: Harness) -> None:
    """The control for the test above: the harness does send concurrently, so 3 there is the limit's doing."""
    harness.dispatch_invocations = 2
    harness.provider.configure(latency_ms=150)
    campaign = harness.campaign(40)
    final = harness.run(campaign["id"])
    harness.settle(final, 40)
    assert harness.provider.stats()["peak_in_flight"] > 6


@pytest.mark.provider_timeout(1)
def test_slots_a_dead_worker_held_come_back_when_their_lease_ends(harness: Harness) -> None:
    from chalicelib.store import slots

    campaign = harness.campaign(10, max_concurrent=2)
    pk = campaign_pk(harness.tenant, campaign)
    lease_until = time.time() + 2.5
    for _ in range(2):  # a worker that died holding every slot
        assert slots.take_one(pk, 2, "dead-worker", lease_until, time.time()) is not None
    # Invocations with a second to send: each waits for a slot, then hands its chunks back.
    harness.dispatch_context = lambda: LambdaContext(remaining_ms=2_500)
    final = harness.run(campaign["id"])
    assert harness.settle(final, 10)["succeeded"] == 10
    first = min(m["accepted_at"] for m in harness.provider.messages())
    assert first >= lease_until, "nothing was sent while the dead worker's lease held both slots"
    assert harness.provider.stats()["peak_in_flight"] <= 2


def test_the_limit_is_patched_while_running_and_checked(harness: Harness) -> None:
    harness.provider.configure(latency_ms=100)
    campaign = harness.campaign(30, max_concurrent=4, rate_per_second=50)
    path = f"/v1/campaigns/{campaign['id']}"
    for bad in (0, 1_001, "many"):
        problem = harness.tenant.call("PATCH", path, {"max_concurrent": bad})
        assert problem.status_code == 422
        assert json.loads(problem.body)["errors"][0]["field"] == "max_concurrent"
    assert harness.tenant.ok("PATCH", path, {"max_concurrent": 1})["max_concurrent"] == 1
    harness.provider.reset()
    final = harness.run(campaign["id"])
    assert final["status"] == "completed" and final["counters"]["succeeded"] == 30
    assert harness.provider.stats()["peak_in_flight"] == 1
    assert harness.tenant.ok("GET", path)["max_concurrent"] == 1


def test_a_lowered_limit_gives_back_the_slots_above_it(aws_env: dict[str, str]) -> None:
    from chalicelib.operations.concurrency import NoSlot, SlotPool
    from chalicelib.store import slots

    pk = "acc_x#C#cmp_x"
    pool = SlotPool(pk, lease_seconds=60)
    taken = sorted(pool.acquire(3, time.monotonic() + 1) for _ in range(3))
    assert taken == [0, 1, 2]
    with pytest.raises(NoSlot):
        pool.acquire(3, time.monotonic() + 0.3)
    other = SlotPool(pk, lease_seconds=60)
    with pytest.raises(NoSlot):
        other.acquire(3, time.monotonic() + 0.3)

    with pytest.raises(NoSlot):  # a send under a limit PATCHed down to 1 (slot 0 is busy too)
        pool.acquire(1, time.monotonic())
    for index in taken:
        pool.release(index)
    assert set(slots.held(pk, time.time())) == {0}, "slots 1 and 2 are above the limit: given back"
    assert other.acquire(2, time.monotonic() + 1) == 1
    pool.close()
    other.close()
    assert slots.held(pk, time.time()) == {}
