"""Voice calls (decision 38): `GET /v1/calls?campaign_id=` lists a campaign's calls as their events left
them; `POST /v1/webhooks/vonage/voice` takes the calls' events, signed by Vonage (HS256, `payload_hash`):
unsigned, tampered or replayed events get 401 and change nothing. With `event=recording` or
`event=transcription` it takes a recorded call's links instead (decision 48)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.http import paged, parse_body, query_str, route
from chalicelib.api.provider_webhooks import signed_callback
from chalicelib.api.views import iso
from chalicelib.domain import segments
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.models import (
    Call,
    CallEvent,
    CallEventResult,
    CallRecordingEvent,
    CallTranscriptionEvent,
    Page,
)
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
    kind = query_str(request, "event") or _kind_of(request)
    if kind not in (None, "", "recording", "transcription"):
        raise InvalidInput.on("event", "recording or transcription (omitted: the call's own events)")
    where = {name: query_str(request, name) for name in ("account", "campaign", "recipient", "attempt")}
    for name, value in where.items():
        if not value:
            raise InvalidInput.on(name, "the event URL names the call's account, campaign, recipient and attempt")
    attempt = str(where["attempt"])
    if not attempt.isdigit():
        raise InvalidInput.on("attempt", "must be a whole number")
    named = (str(where["account"]), str(where["campaign"]), str(where["recipient"]), int(attempt))
    if kind == "recording":  # the call's recording is ready (its `record` action's event URL)
        recorded = parse_body(request, CallRecordingEvent)
        return CallEventResult(result=calls.apply_recording(*named, "recording", recorded.recording_url))
    if kind == "transcription":
        transcribed = parse_body(request, CallTranscriptionEvent)
        if not transcribed.transcription_url:  # a transcription that failed: nothing to link
            return CallEventResult(result="ignored")
        return CallEventResult(result=calls.apply_recording(*named, "transcription", transcribed.transcription_url))
    result = calls.apply_event(*named, parse_body(request, CallEvent).model_dump())
    return CallEventResult(result=result)


def _kind_of(request: Any) -> str | None:
    """A recording or transcription event posted to the call's own event URL (a customer's NCCO whose `record`
    action names no `eventUrl` has Vonage post them there): told apart by its fields, as Vonage shapes them.
    None for a call event (and for a body that is not JSON: parse_body answers that)."""
    try:
        body = request.json_body
    except Exception:
        return None
    if not isinstance(body, dict):
        return None
    if body.get("type") == "transcription":
        return "transcription"
    return "recording" if "recording_url" in body and "status" not in body else None
