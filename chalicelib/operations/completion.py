"""A campaign completes by itself once every recipient it released has a final outcome."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.campaign import CampaignAction, CampaignStatus, next_status
from chalicelib.domain.delivery import FINISHED_COUNTERS
from chalicelib.domain.errors import Conflict
from chalicelib.store import campaigns

ATTEMPTS = 3


def finished(campaign: dict[str, Any]) -> int:
    return sum(int(campaign.get(name, 0)) for name in FINISHED_COUNTERS)


def is_done(campaign: dict[str, Any]) -> bool:
    return (
        bool(campaign.get("release_exhausted"))
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
            campaigns.change_status(campaign["pk"], status, next_status(CampaignAction.COMPLETE, status))
            return True
        except Conflict:
            fresh = campaigns.get_campaign_by_pk(campaign["pk"])
            if fresh is None:
                return False
            campaign = fresh
    return False
