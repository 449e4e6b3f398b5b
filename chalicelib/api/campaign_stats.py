"""`GET /v1/campaigns/{id}/stats?granularity=minute|hour|day&since=&until=`: what happened in each
minute, hour or day of a campaign (sent, delivered, read, failed, opted out, ...; per variant and segment),
rolled up from its timeline's minutes (store/timeline.py, written from the events; decision 41)."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from chalice import Blueprint

from chalicelib.api.http import query_str, query_time, route
from chalicelib.api.views import iso
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.models import CampaignStats, StatsPoint
from chalicelib.operations.events import TIMELINE_COUNTERS
from chalicelib.store import campaigns, timeline

bp = Blueprint(__name__)
SECONDS = {"minute": 60, "hour": 3600, "day": 86_400}
MAX_POINTS = 1500  # a day of minutes, two months of hours, four years of days


@route(bp, "/campaigns/{campaign_id}/stats", methods=["GET"])
def campaign_stats(account: str, campaign_id: str) -> CampaignStats:
    granularity = query_str(bp.current_request, "granularity") or "hour"
    if granularity not in SECONDS:
        raise InvalidInput.on("granularity", "minute, hour or day")
    campaign = campaigns.get_campaign(account, campaign_id)
    step = SECONDS[granularity]
    since = query_time(bp.current_request, "since", float(campaign.get("started_at") or campaign["created_at"]))
    until = query_time(bp.current_request, "until", time.time())
    if until < since:
        raise InvalidInput.on("until", "after `since`")
    if (until - since) / step > MAX_POINTS:
        raise InvalidInput.on("until", f"at most {MAX_POINTS} {granularity}s after `since`: a coarser granularity")
    points: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for minute in timeline.minutes(campaign["pk"], int(since), int(until)):
        at = int(minute["sk"].removeprefix(timeline.PREFIX)) // step * step
        for name, value in minute.items():
            if name not in ("pk", "sk", "purge_at") and not name.startswith(timeline.GUARD):
                points[at][name] += int(value)
    return CampaignStats(
        campaign_id=campaign_id,
        granularity=granularity,
        series=[_point(at, counts) for at, counts in sorted(points.items())],
    )


def _point(at: int, counts: dict[str, int]) -> StatsPoint:
    groups: dict[str, dict[str, dict[str, int]]] = {"v": {}, "g": {}}
    for name, value in counts.items():
        kind, _, rest = name.partition(".")
        if kind in groups and rest:
            group, _, counter = rest.rpartition(".")
            groups[kind].setdefault(group, dict.fromkeys(TIMELINE_COUNTERS, 0))[counter] = value
    own: dict[str, Any] = {name: counts.get(name, 0) for name in TIMELINE_COUNTERS}
    return StatsPoint(at=iso(at) or "", **own, variants=groups["v"], segments=groups["g"])
