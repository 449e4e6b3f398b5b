"""`end_handle`: a `stop` campaign sends to its list as it stood at the start and reports recipients added
later as not included; a `continue` one stays running, sends to recipients added later too (also while it
is still reading the list, and through an upload), and completes once PATCHed to `stop`."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from tests.faults.harness import Harness
from tests.integration.test_release import campaign_pk
from tests.integration.test_uploads import phones_csv, run_ingest, upload_file
from tests.utils import campaign_body, recipient_rows

pytestmark = pytest.mark.faults


def add(harness: Harness, campaign: dict[str, Any], count: int, start: int) -> None:
    rows = recipient_rows(count, start=start)
    added = harness.tenant.ok("POST", f"/v1/lists/{campaign['list_id']}/recipients", {"recipients": rows})
    assert added["accepted"] == count


def sent_to(harness: Harness) -> Counter[str]:
    return Counter(m["to"] for m in harness.provider.messages())


def test_a_stop_campaign_sends_its_list_as_it_stood_and_reports_later_ones_as_not_included(harness: Harness) -> None:
    campaign = harness.campaign(5)
    assert campaign["end_handle"] == "stop"
    add(harness, campaign, 3, start=100)
    final = harness.run(campaign["id"])
    counters = harness.settle(final, 5)
    assert counters["not_included"] == 3
    assert sum(sent_to(harness).values()) == 5
    listed = {o["recipient_id"] for o in harness.outcomes(campaign["id"])}
    assert len(listed) == 5


def test_a_continue_campaign_sends_recipients_added_later_until_it_is_stopped(harness: Harness) -> None:
    campaign = harness.campaign(40, rate_per_second=20, end_handle="continue")
    harness.run(campaign["id"], rounds=1)  # reading the list: some released, most not yet
    add(harness, campaign, 10, start=100)  # added while the first pass reads
    current = harness.run(campaign["id"], rounds=60)
    assert current["status"] == "running", "a continue campaign does not complete by itself"
    assert current["counters"]["succeeded"] == 50 == current["counters"]["total"]
    assert current["counters"]["not_included"] == 0

    add(harness, campaign, 5, start=200)  # added once everything was sent
    current = harness.run(campaign["id"], rounds=30)
    assert current["status"] == "running"
    assert current["counters"]["succeeded"] == current["counters"]["total"] == 55
    assert set(sent_to(harness).values()) == {1} and len(sent_to(harness)) == 55

    # A late write that says recipients were added since the start (as a slow writer's would): the pass it
    # causes reads every later recipient again, and leaves out the ones already sent.
    from chalicelib.domain.campaign import EndHandle
    from chalicelib.store import campaigns

    pk = campaign_pk(harness.tenant, campaign)
    meta = campaigns.get_campaign_by_pk(pk)
    assert meta is not None
    assert campaigns.note_late_recipients(pk, EndHandle.CONTINUE, 0, int(meta["started_at_ms"]) + 1)
    current = harness.run(campaign["id"], rounds=10)
    assert current["counters"]["succeeded"] == current["counters"]["total"] == 55
    assert "late_from" not in (campaigns.get_campaign_by_pk(pk) or {}), "the pass ran"
    assert set(sent_to(harness).values()) == {1}

    stopped = harness.tenant.ok("PATCH", f"/v1/campaigns/{campaign['id']}", {"end_handle": "stop"})
    assert stopped["end_handle"] == "stop"
    final = harness.run(campaign["id"], rounds=5)
    harness.settle(final, 55)
    add(harness, campaign, 2, start=300)  # after it completed: nothing more goes out
    harness.run(campaign["id"], rounds=2)
    assert len(sent_to(harness)) == 55


def test_recipients_added_before_a_stop_are_still_sent(harness: Harness) -> None:
    campaign = harness.campaign(5, end_handle="continue")
    current = harness.run(campaign["id"], rounds=20)
    assert current["counters"]["succeeded"] == 5
    add(harness, campaign, 4, start=100)
    harness.tenant.ok("PATCH", f"/v1/campaigns/{campaign['id']}", {"end_handle": "stop"})
    final = harness.run(campaign["id"])
    harness.settle(final, 9)


def test_a_paused_continue_campaign_takes_recipients_added_meanwhile_when_resumed(harness: Harness) -> None:
    campaign = harness.campaign(5, end_handle="continue")
    harness.run(campaign["id"], rounds=20)
    harness.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/pause")
    add(harness, campaign, 3, start=100)
    paused = harness.run(campaign["id"], rounds=5)
    assert paused["status"] == "paused" and len(sent_to(harness)) == 5
    assert paused["counters"]["total"] == 8 and paused["counters"]["queued"] == 3
    harness.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/resume")
    current = harness.run(campaign["id"], rounds=20)
    assert current["counters"]["succeeded"] == 8 and len(sent_to(harness)) == 8


def test_continue_is_refused_for_a_recurring_campaign(harness: Harness) -> None:
    listed = harness.tenant.ok("POST", "/v1/lists", {"name": "r"}, status=201)
    body = campaign_body(listed["id"], end_handle="continue", recurrence={"expression": "rate(1 day)"})
    problem = harness.tenant.call("POST", "/v1/campaigns", body)
    assert problem.status_code == 422, problem.body
    assert json.loads(problem.body)["errors"][0]["field"] == "end_handle"


def test_an_upload_to_the_list_of_a_continue_campaign_is_sent_and_counted_once(harness: Harness) -> None:
    campaign = harness.campaign(5, end_handle="continue")
    harness.run(campaign["id"], rounds=20)
    upload_file(harness.tenant, harness.env, campaign["list_id"], phones_csv(30, start=500))
    handled = run_ingest(harness.app, harness.env)
    for message in handled:  # S3 and SQS deliver at least once: the same notifications again
        harness.sqs.send_message(QueueUrl=harness.env["INGEST_QUEUE_URL"], MessageBody=message["Body"])
    assert len(run_ingest(harness.app, harness.env)) == len(handled)
    current = harness.run(campaign["id"], rounds=30)
    assert current["counters"]["succeeded"] == current["counters"]["total"] == 35
    assert set(sent_to(harness).values()) == {1} and len(sent_to(harness)) == 35


def test_the_total_of_a_continue_campaign_counts_recipients_added_before_its_first_release(harness: Harness) -> None:
    """Seen while modelling `end_handle` in the state-machine test: the end of the first pass set `total` to
    what it released, dropping the recipients added since the start until their own pass (8 -> 5 -> 8)."""
    campaign = harness.campaign(5, end_handle="continue")
    add(harness, campaign, 3, start=100)
    for _ in range(20):
        current = harness.run(campaign["id"], rounds=1)
        assert current["counters"]["total"] == 8, current["counters"]
    assert current["counters"]["succeeded"] == 8


def test_a_release_counted_twice_holds_the_next_pass_back_for_minutes_not_for_good(harness: Harness) -> None:
    """A release that died between queueing its chunks and saving its cursor releases some recipients again:
    `released` then counts more than ever get a delivery, and a pass waiting for all of them to be claimed
    would wait for ever. It waits five minutes at most."""
    from chalicelib.store import campaigns

    campaign = harness.campaign(5, end_handle="continue")
    harness.run(campaign["id"], rounds=20)
    pk = campaign_pk(harness.tenant, campaign)
    campaigns.set_fields(pk, {"released": 6})  # one of the five released twice
    add(harness, campaign, 2, start=100)
    harness.run(campaign["id"], rounds=10)
    assert len(sent_to(harness)) == 5, "the pass waits: a chunk of the first pass may still be unclaimed"
    from chalicelib.operations.pacer import PASS_WAIT_SECONDS

    meta = campaigns.get_campaign_by_pk(pk)
    assert meta is not None
    older = int(meta["late_from"]) - PASS_WAIT_SECONDS * 1000 - 1000  # as if the addition was 5 minutes ago
    campaigns.set_fields(pk, {"late_from": older})
    current = harness.run(campaign["id"], rounds=20)
    assert len(sent_to(harness)) == 7 and set(sent_to(harness).values()) == {1}
    assert current["counters"]["succeeded"] == 7
