"""Runs of recurring campaigns.

A recurring campaign stays `scheduled`; its EventBridge Scheduler schedule sends one message per
occurrence to the release queue, and `occur` makes the run: a campaign of its own (the recurring one's
definition, `run_of` naming it), so its counters, outcomes and list snapshot (the list as it stood at the
run's start) are a campaign's, and everything the spine does for a campaign it does for a run. The run's id
and creation time come from the occurrence, so a repeated message makes nothing twice.

Under the recurring campaign's key, one record per occurrence (`RUN#<epoch>`) says what became of it:
started, queued behind the previous run, or skipped (with why). The campaign keeps `last_run_id` (the run
an occurrence checks for overlap) and `queued_run_id` (at most one run waiting, started by `after_run`).
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import UTC, datetime
from typing import Any

from chalicelib.domain.campaign import CampaignStatus
from chalicelib.domain.errors import Conflict, InvalidInput, NotFound
from chalicelib.observability import logger
from chalicelib.operations import start
from chalicelib.settings import get_settings
from chalicelib.store import aws, campaigns, keys, lists

RUN_PREFIX = "RUN#"
GOING = frozenset({CampaignStatus.RUNNING, CampaignStatus.PAUSED})
# What a run takes from its recurring campaign: all of its definition but what belongs to the recurrence.
# A chain (`next_campaign_id`) is not: a campaign starts once, and every run after the first would fail to.
NOT_INHERITED = frozenset({"start_at", "expires_at", "recurrence", "next_campaign_id"})


def run_id(parent_id: str, occurrence: int) -> str:
    return "cmp_" + hashlib.sha256(f"{parent_id}:{occurrence}".encode()).hexdigest()[:20]


def record_sk(occurrence: int) -> str:
    return f"{RUN_PREFIX}{occurrence:012d}"


def occur(pk: str, occurrence: str) -> str:
    """Handle one occurrence of a recurring campaign's schedule (`occurrence`: its time, ISO 8601); what
    became of it: started, queued, skipped or ignored (the campaign is no longer recurring, or a repeat)."""
    parent = campaigns.get_campaign_by_pk(pk)
    if parent is None or parent["status"] != CampaignStatus.SCHEDULED or not parent.get("recurrence"):
        logger.info("occurrence of a campaign that no longer recurs; ignored", extra={"campaign": pk})
        return "ignored"
    at = int(datetime.fromisoformat(occurrence.replace("Z", "+00:00")).timestamp())
    if _record(pk, at) is not None:
        return "ignored"  # the same occurrence again (SQS or Scheduler delivered it twice)
    account, parent_id = keys.split_campaign_pk(pk)
    rid = run_id(parent_id, at)
    if rid in (parent.get("last_run_id"), parent.get("queued_run_id")):
        return "ignored"  # a repeat that came while the first was being handled
    previous = _campaign(account, parent.get("last_run_id"))
    if previous is not None and CampaignStatus(previous["status"]) in GOING:
        still = f"the previous run {previous['id']} was still {previous['status']}"
        if parent["recurrence"].get("overlap") != "queue":
            return _write_record(pk, at, rid, "skipped", still)
        if parent.get("queued_run_id"):
            return _write_record(pk, at, rid, "skipped", f"{still} and run {parent['queued_run_id']} was queued")
        run = _create_run(account, parent, rid, at)
        if not _claim_queue(pk, rid):
            _drop(run)
            return _write_record(pk, at, rid, "skipped", f"{still} and another run was queued")
        _write_record(pk, at, rid, "queued", None)
        # The previous run may have finished between the read and the claim, its after_run finding no queue.
        previous = _campaign(account, previous["id"])
        if (previous is None or CampaignStatus(previous["status"]) not in GOING) and _release_queue(pk, rid):
            return _start_run(pk, at, run)
        return "queued"
    run = _create_run(account, parent, rid, at)
    return _start_run(pk, at, run)


def after_run(run: dict[str, Any]) -> None:
    """A run finished (completed, expired or cancelled): start the run queued behind it, if any."""
    if not run.get("run_of"):
        return
    account, _ = keys.split_campaign_pk(run["pk"])
    parent_pk = keys.campaign_pk(account, str(run["run_of"]))
    parent = campaigns.get_campaign_by_pk(parent_pk)
    queued = parent.get("queued_run_id") if parent else None
    if not queued or not _release_queue(parent_pk, str(queued)):
        return
    waiting = _campaign(account, str(queued))
    if waiting is None or waiting["id"] == run["id"]:
        return  # the queued run itself was cancelled: the next occurrence may queue
    recurring = parent is not None and parent["status"] == CampaignStatus.SCHEDULED and parent.get("recurrence")
    if not recurring:  # cancelled, or no longer recurring, since it was queued
        _drop(waiting)
        _write_record(
            parent_pk, int(waiting["occurrence_at"]), waiting["id"], "skipped", "the campaign stopped recurring"
        )
        return
    _start_run(parent_pk, int(waiting["occurrence_at"]), waiting)


def runs_page(pk: str, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """The recurring campaign's occurrence records, oldest first, each with its run's campaign item (if
    one was made) under `run`."""
    query = {
        "TableName": get_settings().main_table,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :run)",
        "ExpressionAttributeValues": {":run": {"S": RUN_PREFIX}},
    }
    found, position = aws.page_over_buckets([pk], query, after=after, limit=limit)
    records = [item for _, item in found]
    account, _ = keys.split_campaign_pk(pk)
    wanted = [{"pk": keys.campaign_pk(account, r["run_id"]), "sk": keys.META} for r in records]
    made = {item["id"]: item for item in aws.batch_get(get_settings().main_table, wanted)} if wanted else {}
    return [{**r, "run": made.get(r["run_id"])} for r in records], position


def get_run(pk: str, rid: str) -> dict[str, Any]:
    """One occurrence record (NotFound if the campaign has no run `rid`)."""
    account, _ = keys.split_campaign_pk(pk)
    run = _campaign(account, rid)
    at = int(run["occurrence_at"]) if run is not None and run.get("occurrence_at") is not None else None
    record = _record(pk, at) if at is not None else None
    if record is None or record["run_id"] != rid:
        raise NotFound(detail=f"run {rid} does not exist")
    return {**record, "run": run}


def _start_run(parent_pk: str, at: int, run: dict[str, Any]) -> str:
    try:
        start.start(run)
    except InvalidInput as exc:  # e.g. its list is empty now: no draft is left behind
        _drop(run)
        return _write_record(parent_pk, at, run["id"], "skipped", exc.detail)
    except Conflict:  # started already by a repeated message, or cancelled meanwhile
        current = campaigns.get_campaign_by_pk(run["pk"])
        if current is None or current["status"] in (CampaignStatus.DRAFT, CampaignStatus.CANCELLED):
            return _write_record(parent_pk, at, run["id"], "skipped", "the run was cancelled before it started")
    campaigns.set_fields(parent_pk, {"last_run_id": run["id"]})
    return _write_record(parent_pk, at, run["id"], "started", None)


def _drop(run: dict[str, Any]) -> None:
    """Cancel a run that will not start (it stays listed under its occurrence, as skipped)."""
    with contextlib.suppress(Conflict):
        campaigns.change_status(run["pk"], CampaignStatus.DRAFT, CampaignStatus.CANCELLED)


def _create_run(account: str, parent: dict[str, Any], rid: str, at: int) -> dict[str, Any]:
    from chalicelib.domain.models import copied_definition  # the API's model of a definition

    when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    definition = copied_definition(parent, f"{parent['name']} · {when}"[:200], NOT_INHERITED)
    definition.update(run_of=parent["id"], occurrence_at=at)
    try:
        audience = int(lists.get_list(account, definition["list_id"])["recipient_count"])
    except NotFound:  # its start says so
        audience = 0
    return campaigns.create_campaign(account, definition, audience=audience, campaign_id=rid, created_at=at)


def _campaign(account: str, campaign_id: str | None) -> dict[str, Any] | None:
    if not campaign_id:
        return None
    return campaigns.get_campaign_by_pk(keys.campaign_pk(account, campaign_id))


def _record(pk: str, at: int) -> dict[str, Any] | None:
    found = aws.dynamodb().get_item(
        TableName=get_settings().main_table, Key=aws.to_item({"pk": pk, "sk": record_sk(at)}), ConsistentRead=True
    )
    return aws.from_item(found["Item"]) if "Item" in found else None


def _write_record(pk: str, at: int, rid: str, outcome: str, reason: str | None) -> str:
    item: dict[str, Any] = {"pk": pk, "sk": record_sk(at), "run_id": rid, "occurrence_at": at, "outcome": outcome}
    if reason:
        item["skip_reason"] = reason
    aws.dynamodb().put_item(TableName=get_settings().main_table, Item=aws.to_item(item))
    logger.info("occurrence", extra={"campaign": pk, "run": rid, "outcome": outcome, "reason": reason})
    return outcome


def _claim_queue(pk: str, rid: str) -> bool:
    """Make `rid` the queued run, unless one is queued already."""
    return _queue_write(
        pk, rid, "SET queued_run_id = :rid", "attribute_not_exists(queued_run_id) OR queued_run_id = :rid"
    )


def _release_queue(pk: str, rid: str) -> bool:
    """Take `rid` off the queue (only one caller gets True)."""
    return _queue_write(pk, rid, "REMOVE queued_run_id", "queued_run_id = :rid")


def _queue_write(pk: str, rid: str, update: str, condition: str) -> bool:
    return campaigns.update_meta(pk, update, condition, {":rid": rid}, returned=False) is not None
