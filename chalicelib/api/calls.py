"""Voice calls (decision 38): `GET /v1/calls?campaign_id=` lists a campaign's calls as their events left
them; `POST /v1/webhooks/vonage/voice` takes the calls' events, signed by Vonage (HS256, `payload_hash`):
unsigned, tampered or replayed events get 401 and change nothing."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.http import paged, parse_body, query_str, route
from chalicelib.api.provider_webhooks import signed_callback
from chalicelib.api.views import iso
from chalicelib.domain import segments
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.models import Call, CallEvent, CallEventResult, Page
from chalicelib.operations import calls
from chalicelib.store import campaigns, deliveries

bp = Blueprint(__name__)


@route(bp, "/calls", methods=["GET"])
def list_calls(account: str) -> Page[Call]:
    campaign_id = query_str(bp.current_request, "campaign_id")
    if not campaign_id:
        raise InvalidInput.on("campaign_id", "name the voice campaign whose calls to list")
    campaign = campaigns.get_campaign(account, campaign_id)
    buckets = int(campaign.get("buckets", 1))
    items, token = paged(
        bp.current_request,
        f"{account}/calls/{campaign_id}",
        lambda after, limit: deliveries.deliveries_page(
            campaign["pk"], buckets, after=after, limit=limit, calls_only=True
        ),
    )
    return Page[Call](items=[call_view(campaign_id, item) for item in items], next_page_token=token)


def call_view(campaign_id: str, item: dict[str, Any]) -> Call:
    duration = item.get("call_duration")
    return Call(
        id=item["call_uuid"],
        campaign_id=campaign_id,
        recipient_id=segments.recipient_of_delivery(str(item["sk"]), item),  # an `every` campaign's: its id
        to=item["destination"],
        attempt=int(item["call_attempt"]),
        status=item.get("call_status") or "started",
        outcome=item["state"],
        reason=item.get("last_reason"),
        answered_by=item.get("call_answered_by"),
        duration_seconds=int(float(duration)) if duration not in (None, "") else None,
        price=str(item["call_price"]) if item.get("call_price") is not None else None,
        recording_url=item.get("call_recording_url"),
        transcript_url=item.get("call_transcript_url"),
        started_at=iso(item.get("call_started_at")),
        ended_at=iso(item.get("call_ended_at")),
    )


@route(bp, "/webhooks/vonage/voice", methods=["POST"], auth="none")
def voice_event() -> CallEventResult:
    request = bp.current_request
    signed_callback(request)
    event = parse_body(request, CallEvent)
    where = {name: query_str(request, name) for name in ("account", "campaign", "recipient", "attempt")}
    for name, value in where.items():
        if not value:
            raise InvalidInput.on(name, "the event URL names the call's account, campaign, recipient and attempt")
    attempt = str(where["attempt"])
    if not attempt.isdigit():
        raise InvalidInput.on("attempt", "must be a whole number")
    result = calls.apply_event(
        str(where["account"]), str(where["campaign"]), str(where["recipient"]), int(attempt), event.model_dump()
    )
    return CallEventResult(result=result)
