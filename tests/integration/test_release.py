"""The pacer: one release at a time per campaign, at the campaign's rate, from where it stopped."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import boto3
import pytest

from chalicelib.operations import pacer as release
from chalicelib.store import campaigns
from tests.utils import Api, campaign_body, recipient_rows

pytestmark = pytest.mark.integration


def queued_recipients(queue_url: str) -> list[str]:
    """Every recipient in the queue, delayed messages included (receive each with a long wait)."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    phones: list[str] = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        phones += [r["id"] for m in batch for r in json.loads(m["Body"])["recipients"]]
    return phones


def draft_with(tenant: Api, recipients: int, **overrides: Any) -> dict[str, Any]:
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": recipient_rows(recipients)})
    return dict(tenant.ok("POST", "/v1/campaigns", campaign_body(listed["id"], **overrides), status=201))


def campaign_pk(tenant: Api, campaign: dict[str, Any]) -> str:
    from chalicelib.store import accounts, keys

    return keys.campaign_pk(str(accounts.account_for_api_key(str(tenant.api_key))), campaign["id"])


def test_a_release_holding_the_lease_keeps_a_second_one_out(tenant: Api, aws_env: dict[str, str]) -> None:
    draft = draft_with(tenant, 40, rate_per_second=100)
    pk = campaign_pk(tenant, draft)
    from chalicelib.domain.campaign import CampaignStatus

    campaigns.change_status(
        pk,
        CampaignStatus.DRAFT,
        CampaignStatus.RUNNING,
        sets={"total": 40, "started_at_ms": int(time.time() * 1000) + 1000},
    )
    assert campaigns.take_release_lease(pk, time.time(), 60) is not None  # a tick is releasing now
    assert release.release_campaign(pk) == 0
    assert queued_recipients(aws_env["DISPATCH_QUEUE_URL"]) == []


def test_ticks_release_each_recipient_once_at_the_rate(tenant: Api, aws_env: dict[str, str]) -> None:
    draft = draft_with(tenant, 25, rate_per_second=10)
    pk = campaign_pk(tenant, draft)
    from chalicelib.domain.campaign import CampaignStatus

    now = time.time()
    campaigns.change_status(
        pk, CampaignStatus.DRAFT, CampaignStatus.RUNNING, sets={"total": 25, "started_at_ms": int(now * 1000) + 1000}
    )
    released = [release.release_campaign(pk, now=now + t, horizon_seconds=1) for t in (0, 0.5, 1.0, 2.0, 3.0, 4.0)]
    # Each tick covers from where the last window ended to now + 1 s: 10/s, never ahead, never twice.
    assert released == [10, 5, 5, 5, 0, 0]
    time.sleep(2.1)  # the later chunks wait out their DelaySeconds
    phones = queued_recipients(aws_env["DISPATCH_QUEUE_URL"])
    assert sorted(phones) == sorted(r["phone"] for r in recipient_rows(25))
    assert campaigns.get_campaign_by_pk(pk)["release_exhausted"] is True  # type: ignore[index]


def test_a_release_short_of_time_stops_between_list_pages_and_the_next_one_goes_on_from_there(
    tenant: Api, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    draft = draft_with(tenant, 120, rate_per_second=1000)  # one window's quota covers the whole list
    pk = campaign_pk(tenant, draft)
    from chalicelib.domain.campaign import CampaignStatus

    now = time.time()
    campaigns.change_status(
        pk, CampaignStatus.DRAFT, CampaignStatus.RUNNING, sets={"total": 120, "started_at_ms": int(now * 1000) + 1000}
    )
    monkeypatch.setattr(release, "RELEASE_PAGE", 50)
    # Each job finds time for its first page only (the deadline is near as soon as it has read one).
    released = [release.release_campaign(pk, now=now + t, out_of_time=lambda: True) for t in (0, 0.1, 0.2, 0.3)]
    assert released == [50, 50, 20, 0]
    assert sorted(queued_recipients(aws_env["DISPATCH_QUEUE_URL"])) == sorted(r["phone"] for r in recipient_rows(120))
    assert campaigns.get_campaign_by_pk(pk)["release_exhausted"] is True  # type: ignore[index]


def test_recipients_added_after_the_start_are_not_in_that_campaign(tenant: Api, aws_env: dict[str, str]) -> None:
    draft = draft_with(tenant, 20, rate_per_second=1)  # the start releases the first one only
    started = tenant.ok("POST", f"/v1/campaigns/{draft['id']}/start")
    time.sleep(0.01)
    late = recipient_rows(5, start=100)
    tenant.ok("POST", f"/v1/lists/{draft['list_id']}/recipients", {"recipients": late})
    pk = campaign_pk(tenant, draft)
    for tick in range(1, 40):
        release.release_campaign(pk, now=time.time() + tick, horizon_seconds=1)
    time.sleep(2.1)
    phones = set(queued_recipients(aws_env["DISPATCH_QUEUE_URL"]))  # the start's chunks still wait out their delays
    assert phones and not phones & {r["phone"] for r in late}
    stored = campaigns.get_campaign_by_pk(pk)
    assert stored is not None
    assert (stored["released"], stored["release_exhausted"]) == (20, True)
    assert started["counters"]["total"] == 20
    assert tenant.ok("GET", f"/v1/campaigns/{draft['id']}")["counters"]["total"] == 20


def test_resume_keeps_the_place_of_what_was_already_released_so_the_rate_never_doubles(
    tenant: Api, aws_env: dict[str, str]
) -> None:
    draft = draft_with(tenant, 10, rate_per_second=1)
    pk = campaign_pk(tenant, draft)
    tenant.ok("POST", f"/v1/campaigns/{draft['id']}/start")
    release.release_campaign(pk, horizon_seconds=60)  # chunks queued up to a minute ahead
    ahead = float(campaigns.get_campaign_by_pk(pk)["released_until"])  # type: ignore[index]
    assert ahead > time.time() + 5
    tenant.ok("POST", f"/v1/campaigns/{draft['id']}/pause")
    tenant.ok("POST", f"/v1/campaigns/{draft['id']}/resume")  # at once: those chunks still wait in the queue
    assert float(campaigns.get_campaign_by_pk(pk)["released_until"]) == ahead  # type: ignore[index]
    assert release.release_campaign(pk, horizon_seconds=1) == 0  # nothing more until that window is used


def test_backpressure_releases_no_more_than_dispatch_absorbs(tenant: Api, aws_env: dict[str, str]) -> None:
    from chalicelib.domain.pacing import paced_rate
    from chalicelib.settings import get_settings

    draft = draft_with(tenant, 300, rate_per_second=2)
    pk = campaign_pk(tenant, draft)
    tenant.ok("POST", f"/v1/campaigns/{draft['id']}/start")
    backlog = get_settings().release_backlog_seconds
    released = sum(release.release_campaign(pk, now=time.time() + t, horizon_seconds=1) for t in range(0, 120, 2))
    # Nothing was dispatched (no counters moved): the pacer stops at the bound, not at 240 over two minutes
    # (the bound is at the guarded rate, decision 26).
    assert released == max(get_settings().max_chunk_size, math.ceil(paced_rate(2) * (1 + backlog)))
    assert pacer_outstanding(pk) == released


def pacer_outstanding(pk: str) -> int:
    campaign = campaigns.get_campaign_by_pk(pk)
    assert campaign is not None
    return release.outstanding(campaign)


def test_a_campaign_started_while_an_upload_still_writes_never_shows_negative_queued(
    tenant: Api, aws_env: dict[str, str]
) -> None:
    from chalicelib.settings import get_settings
    from chalicelib.store import accounts, aws, keys

    draft = draft_with(tenant, 20, rate_per_second=100)
    started = tenant.ok("POST", f"/v1/campaigns/{draft['id']}/start")
    account = str(accounts.account_for_api_key(str(tenant.api_key)))
    # An upload that began before the start lands its rows now, its count update not yet made.
    late = recipient_rows(5, start=500)
    started_ms = int(campaigns.get_campaign(account, draft["id"])["started_at_ms"])
    for row in late:
        aws.dynamodb().put_item(
            TableName=get_settings().main_table,
            Item=aws.to_item(
                {
                    "pk": keys.list_recipient_pk(account, draft["list_id"], row["phone"]),
                    "sk": keys.recipient_sk(row["phone"]),
                    "attributes": row["params"],
                    "destinations": [{"type": "phone", "address": row["phone"]}],
                    "added_at": started_ms - 1,
                }
            ),
        )
    assert started["counters"]["total"] == 20
    release.release_campaign(campaign_pk(tenant, draft))
    counters = tenant.ok("GET", f"/v1/campaigns/{draft['id']}")["counters"]
    assert counters["total"] == 25 and counters["queued"] == 25  # exact, and never below zero


def test_each_running_campaign_is_released_by_its_own_job_so_one_failing_does_not_hold_back_another(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.workers.release import fan_out
    from tests.utils import receive_all, sqs_event

    broken, healthy = draft_with(tenant, 5), draft_with(tenant, 5)
    for draft in (broken, healthy):
        tenant.ok("POST", f"/v1/campaigns/{draft['id']}/start")
    receive_all(aws_env["RELEASE_QUEUE_URL"])  # the jobs the starts queued
    real = release.release_campaign
    broken_pk = campaign_pk(tenant, broken)

    def fail_one(pk: str, **kwargs: Any) -> int:
        if pk == broken_pk:
            raise RuntimeError("injected: this campaign's release fails")
        return real(pk, **kwargs)

    monkeypatch.setattr(release, "release_campaign", fail_one)
    assert fan_out() == 2
    jobs = receive_all(aws_env["RELEASE_QUEUE_URL"])
    answer = chalice_app.release(sqs_event(jobs), None)
    failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    assert failed == {j["MessageId"] for j in jobs if broken_pk in j["Body"]}  # only its job comes back
    released = {
        r["id"] for m in receive_all(aws_env["DISPATCH_QUEUE_URL"]) for r in json.loads(m["Body"])["recipients"]
    }
    assert len(released) == 5


def test_a_faster_rate_patched_while_running_is_released_at_once(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any
) -> None:
    """At 1/s the pacer released a minute ahead (a release window on AWS); PATCHed to 50/s, the next
    recipients are queued for now, not after that minute (decision 23: dispatch's ledger keeps the new rate)."""
    from tests.utils import receive_all, run_release_jobs

    draft = draft_with(tenant, 100, rate_per_second=1)
    pk = campaign_pk(tenant, draft)
    tenant.ok("POST", f"/v1/campaigns/{draft['id']}/start")
    receive_all(aws_env["RELEASE_QUEUE_URL"])  # the start's job: released by hand below, with a 60 s window
    release.release_campaign(pk, horizon_seconds=60)
    # Only the first two seconds' chunks (queued a second ahead of their places, decision 26); the rest delayed.
    now_visible = receive_all(aws_env["DISPATCH_QUEUE_URL"])
    assert sum(len(json.loads(m["Body"])["recipients"]) for m in now_visible) == 2
    tenant.ok("PATCH", f"/v1/campaigns/{draft['id']}", {"rate_per_second": 50})
    assert run_release_jobs(chalice_app, aws_env["RELEASE_QUEUE_URL"]) == 1  # queued by the PATCH
    visible = receive_all(aws_env["DISPATCH_QUEUE_URL"])
    assert sum(len(json.loads(m["Body"])["recipients"]) for m in visible) >= 40  # the rest of the list, now
    # A slower rate changes nothing here: dispatch's ledger slows the sends (no release is queued).
    tenant.ok("PATCH", f"/v1/campaigns/{draft['id']}", {"rate_per_second": 2})
    assert receive_all(aws_env["RELEASE_QUEUE_URL"]) == []


def running_with_a_due_retry(tenant: Api, now: float, released: int) -> tuple[str, str, str]:
    """A campaign 100 s into a run at 1,000/s, 10,000 recipients finished of `released`, the list done, and
    one retry due: its pk, the retry's delivery partition and recipient id."""
    from chalicelib.domain.campaign import CampaignStatus
    from chalicelib.settings import get_settings
    from chalicelib.store import aws, deliveries

    draft = draft_with(tenant, 1, rate_per_second=1000)
    pk = campaign_pk(tenant, draft)
    campaigns.change_status(
        pk,
        CampaignStatus.DRAFT,
        CampaignStatus.RUNNING,
        sets={
            "total": 30_001,
            "started_at_ms": int((now - 100) * 1000),
            "released": released,
            "succeeded": 10_000,
            "waiting": 1,
            "release_exhausted": True,
        },
    )
    campaign = campaigns.get_campaign_by_pk(pk)
    assert campaign is not None
    rid = "rcp_retried"
    target = deliveries.pk_for(pk, int(campaign.get("buckets", 1)), rid)
    waiting = {"state": "queued", "attempt": 1, "due_at": now - 1, "recipient": {"id": rid, "phone": "+14155550123"}}
    aws.dynamodb().put_item(
        TableName=get_settings().deliveries_table, Item=aws.to_item({"pk": target, "sk": rid, **waiting})
    )
    return pk, target, rid


@pytest.mark.parametrize("backlog", [True, False], ids=["behind a backlog", "nothing ahead of it"])
def test_a_released_retry_stays_leased_while_its_chunk_waits_behind_the_backlog(
    tenant: Api, aws_env: dict[str, str], backlog: bool
) -> None:
    """100 s into a run at 1,000/s that dispatch finishes at 100/s: a retry released behind 20,000 unfinished
    recipients waits about 200 s in the queue. Leased for the fixed 120 s it was released a second time while
    its first chunk still waited (at 100,000 recipients on the local stack, three copies per retry)."""
    from chalicelib.store import deliveries

    now = time.time()
    pk, target, rid = running_with_a_due_retry(tenant, now, released=30_001 if backlog else 10_001)
    assert release.release_campaign(pk, now=now) == 1
    leased = deliveries.get_delivery(target, rid)
    assert leased is not None
    assert float(leased["due_at"]) == pytest.approx(now + (400 if backlog else release.RETRY_LEASE_SECONDS), abs=1)
    # Past the fixed lease: released again only when nothing was ahead of its chunk (the chunk was lost).
    release.release_campaign(pk, now=now + release.RETRY_LEASE_SECONDS + 60)
    assert queued_recipients(aws_env["DISPATCH_QUEUE_URL"]) == [rid] * (1 if backlog else 2)


def test_a_release_killed_before_its_chunks_went_out_leaves_its_retries_due(
    tenant: Api, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The release dies (the runner killed, a Lambda crash) after reading a due retry and before its chunk is
    queued: the next release sends it. Leased before the send, it waited out the whole lease (120 s or more),
    and its campaign with it."""
    from chalicelib.store import deliveries, queue

    now = time.time()
    pk, target, rid = running_with_a_due_retry(tenant, now, released=10_001)

    def killed(*_: Any, **__: Any) -> None:
        raise SystemExit("killed mid-release")

    with monkeypatch.context() as patched:
        patched.setattr(queue, "send_chunks_encoded", killed)
        with pytest.raises(SystemExit):
            release.release_campaign(pk, now=now, lease_seconds=1)
    assert queued_recipients(aws_env["DISPATCH_QUEUE_URL"]) == []
    assert release.release_campaign(pk, now=now + 2) == 1
    assert queued_recipients(aws_env["DISPATCH_QUEUE_URL"]) == [rid]
    leased = deliveries.get_delivery(target, rid)
    assert leased is not None and float(leased["due_at"]) > now + 2


def test_a_retry_parked_by_dispatch_before_its_lease_keeps_its_own_due_time(tenant: Api) -> None:
    """Dispatch may take a retry's chunk before the release has leased it, and park the recipient again (its
    campaign paused: due at once on the resume; its send window shut: due when it opens). The release's lease,
    written after the send, leaves that due time alone."""
    from chalicelib.store import deliveries

    now = time.time()
    _, target, rid = running_with_a_due_retry(tenant, now, released=10_001)
    assert deliveries.lease_due(target, rid, 1, now + 3600)  # parked until its window opens in an hour
    assert not deliveries.lease_due(target, rid, 1, now + 120, was=now - 1)  # the release's lease, as it read it
    parked = deliveries.get_delivery(target, rid)
    assert parked is not None and float(parked["due_at"]) == pytest.approx(now + 3600)
