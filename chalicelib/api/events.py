"""`GET /v1/events`: the event log (decision 41), oldest first, filtered by campaign (or a recurring
campaign's run: `run_id`), recipient, type and a time range (the last 24 hours unless given). Read from the
log's JSON Lines objects in key (time) order; the page token is where the last page stopped (an object and
a line in it)."""

from __future__ import annotations

import time
from typing import Any

from chalice import Blueprint

from chalicelib.api.http import DEFAULT_PAGE, query_int, query_str, query_time, route
from chalicelib.api.views import iso
from chalicelib.domain.errors import InvalidInput, NotFound
from chalicelib.domain.models import Event, Page
from chalicelib.operations.events import EVENT_TYPES
from chalicelib.store import campaigns, event_log, pages

bp = Blueprint(__name__)
MAX_RANGE_SECONDS = 92 * 86_400  # the log is kept 90 days


def event_view(event: dict[str, Any]) -> Event:
    return Event.model_validate({**event, "occurred_at": iso(event["occurred_at"])})


def _check_run_of(account: str, run_id: str, campaign_id: str) -> None:
    """A 422 on `run_id` unless it is a run of `campaign_id`."""
    try:
        run = campaigns.get_campaign(account, run_id)
    except NotFound:
        raise InvalidInput.on("run_id", f"no run {run_id}") from None
    if run.get("run_of") != campaign_id:
        raise InvalidInput.on("run_id", f"{run_id} is not a run of campaign {campaign_id}")


@route(bp, "/events", methods=["GET"])
def list_events(account: str) -> Page[Event]:
    request = bp.current_request
    now = time.time()
    since, until = query_time(bp.current_request, "since", now - 86_400), query_time(bp.current_request, "until", now)
    if until < since or until - since > MAX_RANGE_SECONDS:
        raise InvalidInput.on("until", "after `since`, and at most 92 days after it")
    kind = query_str(request, "type")
    if kind is not None and kind not in EVENT_TYPES:
        raise InvalidInput.on("type", f"one of {', '.join(EVENT_TYPES)}")
    campaign, recipient = query_str(request, "campaign_id"), query_str(request, "recipient_id")
    run = query_str(request, "run_id")
    if run is not None:  # a run is a campaign of its own (operations/runs.py): its events are filed under its id
        if campaign is not None:
            _check_run_of(account, run, campaign)
        campaign = run
    limit = query_int(request, "limit", DEFAULT_PAGE)
    # The filters as asked (a default time range moves on between pages: later events are listed too).
    asked = [query_str(request, name) for name in ("since", "until")]
    scope = f"{account}/events/{asked}/{campaign}/{recipient}/{kind}"
    position = pages.decode(scope, query_str(request, "page_token"))

    def wanted(event: dict[str, Any]) -> bool:
        return (
            since <= float(event["occurred_at"]) <= until
            and (kind is None or event["type"] == kind)
            and (campaign is None or event.get("campaign_id") == campaign)
            and (recipient is None or event.get("recipient_id") == recipient)
        )

    def object_keys() -> Any:
        if position:
            key, _, _ = position.rpartition("|")
            yield key
            start = key
        else:
            start = event_log.hour_prefix(account, since)
        yield from event_log.keys_from(account, start, event_log.hour_prefix(account, until + 3600))

    found: list[dict[str, Any]] = []
    next_position = None
    for key in object_keys():
        if campaign is not None and f"/{campaign}/" not in key.removeprefix(event_log.account_prefix(account)):
            continue
        first = int(position.rpartition("|")[2]) if position and key == position.rpartition("|")[0] else 0
        lines = event_log.read(key)
        for index in range(first, len(lines)):
            if len(found) == limit:
                next_position = f"{key}|{index}"
                break
            if wanted(lines[index]):
                found.append(lines[index])
        if next_position:
            break
    items = [event_view(event) for event in found]
    return Page[Event](items=items, next_page_token=pages.encode(scope, next_position))
