"""Campaigns: create a draft, read it with live counters, start/pause/resume/cancel, list outcomes."""

from __future__ import annotations

import time

from chalice import Blueprint

from chalicelib.api.http import paged, parse_body, route
from chalicelib.api.views import campaign_view, delivery_view
from chalicelib.domain.campaign import CampaignAction, CampaignStatus, next_status
from chalicelib.domain.errors import InvalidInput, NotFound
from chalicelib.domain.models import Campaign, CampaignCreate, Delivery, Page
from chalicelib.observability import logger
from chalicelib.operations import pacer
from chalicelib.store import campaigns, deliveries, keys, lists

bp = Blueprint(__name__)


@route(bp, "/campaigns", methods=["POST"], status=201)
def create_campaign(account: str) -> Campaign:
    body = parse_body(bp.current_request, CampaignCreate)
    try:
        lists.get_list(account, body.list_id)
    except NotFound:
        raise InvalidInput.on("list_id", f"no list {body.list_id} in this account") from None
    return campaign_view(campaigns.create_campaign(account, body.model_dump(mode="json")))


@route(bp, "/campaigns/{campaign_id}", methods=["GET"])
def get_campaign(account: str, campaign_id: str) -> Campaign:
    return campaign_view(campaigns.get_campaign(account, campaign_id))


@route(bp, "/campaigns/{campaign_id}/start", methods=["POST"])
def start_campaign(account: str, campaign_id: str) -> Campaign:
    campaign = campaigns.get_campaign(account, campaign_id)
    current = CampaignStatus(campaign["status"])
    new = next_status(CampaignAction.START, current)
    audience = int(lists.get_list(account, campaign["list_id"])["recipient_count"])
    if audience == 0:
        raise InvalidInput.on("list_id", "the campaign's list has no recipients; add some before starting")
    now = time.time()
    sets = {"total": audience, "started_at": now, "started_at_ms": int(now * 1000), "released_until": now}
    started = campaigns.change_status(campaign["pk"], current, new, sets=sets)
    _release_now(started["pk"])
    return campaign_view(campaigns.get_campaign(account, campaign_id))


def _act(account: str, campaign_id: str, action: CampaignAction) -> Campaign:
    campaign = campaigns.get_campaign(account, campaign_id)
    current = CampaignStatus(campaign["status"])
    # Resuming restarts the pace from now: no burst to catch up on the paused time.
    sets = {"released_until": time.time()} if action == CampaignAction.RESUME else None
    changed = campaigns.change_status(campaign["pk"], current, next_status(action, current), sets=sets)
    if action == CampaignAction.RESUME:
        _release_now(changed["pk"])
        changed = campaigns.get_campaign(account, campaign_id)
    return campaign_view(changed)


def _release_now(pk: str) -> None:
    """Release the first window (up to the next tick) at once; the tick covers it if this fails."""
    try:
        pacer.release_campaign(pk)
    except Exception:
        logger.exception("immediate release failed; the next pacer tick releases", extra={"campaign": pk})


@route(bp, "/campaigns/{campaign_id}/pause", methods=["POST"])
def pause_campaign(account: str, campaign_id: str) -> Campaign:
    return _act(account, campaign_id, CampaignAction.PAUSE)


@route(bp, "/campaigns/{campaign_id}/resume", methods=["POST"])
def resume_campaign(account: str, campaign_id: str) -> Campaign:
    return _act(account, campaign_id, CampaignAction.RESUME)


@route(bp, "/campaigns/{campaign_id}/cancel", methods=["POST"])
def cancel_campaign(account: str, campaign_id: str) -> Campaign:
    return _act(account, campaign_id, CampaignAction.CANCEL)


@route(bp, "/campaigns/{campaign_id}/recipients", methods=["GET"])
def list_outcomes(account: str, campaign_id: str) -> Page[Delivery]:
    campaigns.get_campaign(account, campaign_id)
    pk = keys.campaign_pk(account, campaign_id)
    items, token = paged(
        bp.current_request,
        f"{account}/campaigns/{campaign_id}",
        lambda after, limit: deliveries.deliveries_page(pk, after_sk=after, limit=limit),
    )
    return Page[Delivery](items=[delivery_view(i) for i in items], next_page_token=token)
