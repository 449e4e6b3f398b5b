"""Campaigns: create a draft, read it with live counters, start/pause/resume/cancel, list outcomes, recount.

No request does per-recipient work: start and resume change the status and queue one release job.
"""

from __future__ import annotations

import time

from chalice import Blueprint

from chalicelib.api.http import paged, parse_body, route
from chalicelib.api.views import campaign_view, counters_view, delivery_view
from chalicelib.domain.campaign import CampaignAction, CampaignStatus, next_status
from chalicelib.domain.errors import InvalidInput, NotFound
from chalicelib.domain.models import Campaign, CampaignCreate, Delivery, Page, Recount
from chalicelib.observability import logger
from chalicelib.operations import recount
from chalicelib.store import campaigns, deliveries, list_catalog, lists, queue

bp = Blueprint(__name__)


@route(bp, "/campaigns", methods=["POST"], status=201)
def create_campaign(account: str) -> Campaign:
    body = parse_body(bp.current_request, CampaignCreate)
    try:
        lists.get_list(account, body.list_id)
    except NotFound:
        raise InvalidInput.on("list_id", f"no list {body.list_id} in this account") from None
    for i, excluded in enumerate(body.exclusion_list_ids):
        try:
            lists.get_list(account, excluded)
        except NotFound:
            raise InvalidInput.on(f"exclusion_list_ids[{i}]", f"no list {excluded} in this account") from None
    return campaign_view(campaigns.create_campaign(account, body.model_dump(mode="json")))


@route(bp, "/campaigns/{campaign_id}", methods=["GET"])
def get_campaign(account: str, campaign_id: str) -> Campaign:
    return campaign_view(campaigns.get_campaign(account, campaign_id))


@route(bp, "/campaigns/{campaign_id}/start", methods=["POST"])
def start_campaign(account: str, campaign_id: str) -> Campaign:
    campaign = campaigns.get_campaign(account, campaign_id)
    current = CampaignStatus(campaign["status"])
    new = next_status(CampaignAction.START, current)
    # Marked before the status changes: a list's delete or clear then sees this campaign (list_catalog).
    for used in campaign.get("exclusion_list_ids") or []:
        list_catalog.mark_used_by(account, used, campaign_id)
    audience = int(list_catalog.mark_used_by(account, campaign["list_id"], campaign_id)["recipient_count"])
    if audience == 0:
        raise InvalidInput.on("list_id", "the campaign's list has no recipients; add some before starting")
    now = time.time()
    sets = {"total": audience, "started_at": now, "started_at_ms": int(now * 1000), "released_until": now}
    started = campaigns.change_status(campaign["pk"], current, new, sets=sets)
    _release_soon(started["pk"])
    return campaign_view(started)


def _act(account: str, campaign_id: str, action: CampaignAction) -> Campaign:
    campaign = campaigns.get_campaign(account, campaign_id)
    current = CampaignStatus(campaign["status"])
    sets = None
    if action == CampaignAction.RESUME:
        # The pace restarts from now (no burst to catch up on the paused time), but never before what was
        # already released: chunks still waiting in the queue keep their place, and the rate is not doubled.
        sets = {"released_until": max(time.time(), float(campaign.get("released_until", 0)))}
    changed = campaigns.change_status(campaign["pk"], current, next_status(action, current), sets=sets)
    if action == CampaignAction.RESUME:
        _release_soon(changed["pk"])
    return campaign_view(changed)


def _release_soon(pk: str) -> None:
    """Queue a release job now, so the first window goes out without waiting for the tick (which covers
    it if this fails)."""
    try:
        queue.send_release_jobs([pk])
    except Exception:
        logger.exception("queueing the first release failed; the next tick releases", extra={"campaign": pk})


@route(bp, "/campaigns/{campaign_id}/pause", methods=["POST"])
def pause_campaign(account: str, campaign_id: str) -> Campaign:
    return _act(account, campaign_id, CampaignAction.PAUSE)


@route(bp, "/campaigns/{campaign_id}/resume", methods=["POST"])
def resume_campaign(account: str, campaign_id: str) -> Campaign:
    return _act(account, campaign_id, CampaignAction.RESUME)


@route(bp, "/campaigns/{campaign_id}/cancel", methods=["POST"])
def cancel_campaign(account: str, campaign_id: str) -> Campaign:
    return _act(account, campaign_id, CampaignAction.CANCEL)


@route(bp, "/campaigns/{campaign_id}/recount", methods=["POST"])
def recount_campaign(account: str, campaign_id: str) -> Recount:
    return _recount(account, campaign_id)


@route(bp, "/accounts/{account_id}/campaigns/{campaign_id}/recount", methods=["POST"], auth="operator")
def recount_any_campaign(account_id: str, campaign_id: str) -> Recount:
    """The operator's recount of any account's campaign (admin token)."""
    return _recount(account_id, campaign_id)


def _recount(account: str, campaign_id: str) -> Recount:
    result = recount.recount(campaigns.get_campaign(account, campaign_id))
    return Recount(
        before=counters_view(result.before),
        after=counters_view(result.after),
        drift=result.drift,
        applied=result.applied,
    )


@route(bp, "/campaigns/{campaign_id}/recipients", methods=["GET"])
def list_outcomes(account: str, campaign_id: str) -> Page[Delivery]:
    campaign = campaigns.get_campaign(account, campaign_id)
    buckets = int(campaign.get("buckets", 1))
    items, token = paged(
        bp.current_request,
        f"{account}/campaigns/{campaign_id}",
        lambda after, limit: deliveries.deliveries_page(campaign["pk"], buckets, after=after, limit=limit),
    )
    return Page[Delivery](items=[delivery_view(i) for i in items], next_page_token=token)
