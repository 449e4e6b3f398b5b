"""Starting a campaign, by hand (POST .../start) or by its schedule (a message on the release queue).

O(1) writes: the lists record the campaign (so they cannot be deleted under it), the status moves
conditionally with the audience size, and one release job is queued; the recipients are released by the
pacer from there.
"""

from __future__ import annotations

import time
from typing import Any

from chalicelib.domain import segments, variables
from chalicelib.domain.campaign import LATE_START_SECONDS, CampaignAction, CampaignStatus, next_status
from chalicelib.domain.errors import Conflict, InvalidInput
from chalicelib.observability import logger
from chalicelib.store import campaigns, keys, list_catalog, lists, queue, schedules

EMPTY_LIST = "the campaign's list has no recipients; add some before starting"


def start(campaign: dict[str, Any], *, scheduled_for: float | None = None) -> dict[str, Any]:
    """Start a draft or scheduled campaign (Conflict from any other status); the campaign as started.
    `scheduled_for`: the start time of the schedule that fired, for reporting a late start."""
    account, campaign_id = keys.split_campaign_pk(campaign["pk"])
    current = CampaignStatus(campaign["status"])
    if campaign.get("recurrence"):
        raise Conflict(
            detail=f"campaign {campaign_id} recurs: its schedule starts its runs (PATCH recurrence to null to "
            "send it once)"
        )
    new = next_status(CampaignAction.START, current)
    _check_variables(account, campaign)
    # Marked before the status changes: a list's delete or clear then sees this campaign (list_catalog).
    for used in campaign.get("exclusion_list_ids") or []:
        list_catalog.mark_used_by(account, used, campaign_id)
    audience = int(list_catalog.mark_used_by(account, campaign["list_id"], campaign_id)["recipient_count"])
    if audience == 0:
        raise InvalidInput.on("list_id", EMPTY_LIST)
    now = time.time()
    sets: dict[str, Any] = {"total": audience, "started_at": now, "started_at_ms": int(now * 1000)}
    sets["released_until"] = now
    if segments.is_every(campaign):  # total counts messages (one per matching segment): the people too
        sets["recipients"] = audience
    if campaign.get("max_age_seconds"):
        aged = now + int(campaign["max_age_seconds"])
        sets["expires_at"] = min(aged, float(campaign["expires_at"])) if campaign.get("expires_at") else aged
    if scheduled_for is not None and now - scheduled_for > LATE_START_SECONDS:
        sets["started_late_seconds"] = round(now - scheduled_for, 1)
    started = campaigns.change_status(campaign["pk"], current, new, sets=sets)
    if current == CampaignStatus.SCHEDULED and scheduled_for is None:
        schedules.delete_start(campaign_id)  # started by hand before its time
    release_soon(started["pk"])
    return started


def variable_check(account: str, campaign: dict[str, Any]) -> tuple[int, bool, set[str], dict[str, int]]:
    """The list's recipients, whether it counts their attributes, the variables the campaign's texts need,
    and how many recipients lack each (those lacking one)."""
    meta = lists.get_list(account, campaign["list_id"])
    recipients = int(meta["recipient_count"])
    needed = variables.needed(campaign)
    if "field_counts" not in meta:
        return recipients, False, needed, {}
    return recipients, True, needed, variables.missing(campaign, recipients, meta["field_counts"])


def _check_variables(account: str, campaign: dict[str, Any]) -> None:
    """Refuse to start a campaign some of whose recipients would fail for a variable they lack, unless it
    allows that (422 naming the variables and how many lack each)."""
    if campaign.get("allow_missing_variables"):
        return
    recipients, _, _, lacking = variable_check(account, campaign)
    if lacking:
        named = ", ".join(f"{count:,} of {recipients:,} lack {name}" for name, count in lacking.items())
        raise InvalidInput.on(
            "allow_missing_variables",
            f"{named}: they would fail unsent. Fix the list, give the variable in `data`, or PATCH "
            "allow_missing_variables to true",
        )


def start_scheduled(pk: str, start_at: float) -> None:
    """What a fired schedule asks: start the campaign if it is still scheduled for that time (a schedule
    moved or cancelled since, or a repeated message, changes nothing). A list found empty then moves the
    campaign back to draft, with the reason on it."""
    campaign = campaigns.get_campaign_by_pk(pk)
    if campaign is None or campaign["status"] != CampaignStatus.SCHEDULED or campaign.get("start_at") != start_at:
        logger.info("stale scheduled start; ignored", extra={"campaign": pk, "start_at": start_at})
        return
    try:
        start(campaign, scheduled_for=start_at)
    except InvalidInput as problem:  # an empty list, recipients lacking a variable: back to draft, with why
        campaigns.change_status(
            pk, CampaignStatus.SCHEDULED, CampaignStatus.DRAFT, sets={"start_problem": problem.detail}
        )
    except Conflict:
        logger.info("the campaign moved on before its schedule fired", extra={"campaign": pk})


def release_soon(pk: str) -> None:
    """Queue a release job now, so the first window goes out without waiting for the tick (which covers
    it if this fails)."""
    try:
        queue.send_release_jobs([pk])
    except Exception:
        logger.exception("queueing the first release failed; the next tick releases", extra={"campaign": pk})
