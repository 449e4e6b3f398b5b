"""A campaign completes by itself once every recipient it released has a final outcome; then the campaign it
chains to (`next_campaign_id`) starts. One that left recipients unreached at its `expires_at` ends `expired`
instead (dispatch expired some, or the pacer marked it, counting the ones it never released as expired)."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.campaign import CampaignAction, CampaignStatus, EndHandle, next_status
from chalicelib.domain.delivery import FINISHED_COUNTERS
from chalicelib.domain.errors import Conflict, InvalidInput, NotFound
from chalicelib.observability import logger
from chalicelib.operations import runs, start
from chalicelib.store import campaigns, keys

ATTEMPTS = 3


def finished(campaign: dict[str, Any]) -> int:
    return sum(int(campaign.get(name, 0)) for name in FINISHED_COUNTERS) + int(campaign.get("expired_unreleased", 0))


def expired(campaign: dict[str, Any]) -> bool:
    """Whether any recipient was not reached because the campaign expired (then it ends `expired`)."""
    return "expired_unreleased" in campaign or int(campaign.get("expired", 0)) > 0


def is_done(campaign: dict[str, Any]) -> bool:
    """Every recipient it took is final, and it takes no more (a `continue` campaign until PATCHed to stop;
    recipients added before that wait for their pass)."""
    return (
        campaign.get("end_handle") != EndHandle.CONTINUE
        and "late_from" not in campaign
        and bool(campaign.get("release_exhausted"))
        and int(campaign.get("in_flight", 0)) == 0
        and int(campaign.get("waiting", 0)) == 0
        and finished(campaign) >= int(campaign["total"])
    )


def complete_if_done(campaign: dict[str, Any]) -> bool:
    """Complete the campaign if it is done; a pause or resume landing at the same moment is retried."""
    for _ in range(ATTEMPTS):
        status = CampaignStatus(campaign["status"])
        if status not in (CampaignStatus.RUNNING, CampaignStatus.PAUSED) or not is_done(campaign):
            return False
        try:
            action = CampaignAction.EXPIRE if expired(campaign) else CampaignAction.COMPLETE
            completed = campaigns.change_status(campaign["pk"], status, next_status(action, status))
        except Conflict:
            fresh = campaigns.get_campaign_by_pk(campaign["pk"])
            if fresh is None:
                return False
            campaign = fresh
            continue
        if completed.get("next_campaign_id") and action == CampaignAction.COMPLETE:
            start_next(completed)
        runs.after_run(completed)
        return True
    return False


def start_next(completed: dict[str, Any]) -> None:
    """Start the campaign the completed one chains to (only the call that completed it gets here, once). A
    next campaign that cannot start (gone, already started, an empty list) is reported on this one."""
    account, _ = keys.split_campaign_pk(completed["pk"])
    next_id = str(completed["next_campaign_id"])
    try:
        start.start(campaigns.get_campaign(account, next_id))
        return
    except (Conflict, InvalidInput, NotFound) as exc:
        problem = f"{next_id} was not started: {exc.detail}"
    logger.warning("next campaign not started", extra={"campaign": completed["pk"], "problem": problem})
    campaigns.set_fields(completed["pk"], {"next_problem": problem})
