"""Tracked links and conversions (decision 43).

- `GET /l/{token}` (public, outside /v1: it is what a recipient's message links to, kept short): a 302 to
  the link's URL, the click counted on the recipient's delivery; `HEAD` answers the same without counting
  (link previews and scanners); a token we did not sign is a 404 problem+json.
- `POST /v1/campaigns/{campaign_id}/conversions`: a goal a recipient reached, counted on its delivery.
"""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.http import parse_body, problem_from, route
from chalicelib.api.views import iso
from chalicelib.domain.errors import DomainError
from chalicelib.domain.models import Conversion, ConversionCreate
from chalicelib.operations import links
from chalicelib.store import campaigns

bp = Blueprint(__name__)  # under /v1
public = Blueprint(f"{__name__}.public")  # at the root: /l/{token}


@public.route("/l/{token}", methods=["GET", "HEAD"])
def follow(token: str) -> Response:
    request = public.current_request
    try:
        followed = links.follow(token, count=request.method == "GET")
    except DomainError as exc:
        return problem_from(exc)
    # Not cached: every click is to reach us (a shared cache would swallow other recipients' clicks too).
    headers: dict[str, str | list[str]] = {
        "Location": followed.url,
        "Cache-Control": "private, no-store",
        "Referrer-Policy": "no-referrer",
    }
    return Response(body="", status_code=302, headers=headers)


@route(bp, "/campaigns/{campaign_id}/conversions", methods=["POST"], status=201)
def record_conversion(account: str, campaign_id: str) -> Conversion:
    campaign = campaigns.get_campaign(account, campaign_id)  # first: another account's id is a 404
    body = parse_body(bp.current_request, ConversionCreate)
    updated = links.convert(campaign, body.recipient_id, body.goal, body.value, body.occurred_at)
    return Conversion(
        campaign_id=campaign_id,
        recipient_id=body.recipient_id,
        goal=body.goal,
        value=body.value,
        occurred_at=iso(float(updated["conversion_at"])) or "",
        conversions=int(updated["conversions"]),
        converted_at=iso(float(updated["converted_at"])) or "",
    )
