"""Erasure of a person (decision 42): `DELETE /v1/recipients?destination=` (or `recipient_id=`) is accepted at
once (202) and carried out by a job; `GET /v1/erasures/{id}` and `GET /v1/erasures` show them (the audit log)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from chalice import Blueprint

from chalicelib.api.http import RECIPIENT_ID_PATTERN, bearer_token, paged, query_str, route
from chalicelib.api.views import iso
from chalicelib.domain.errors import FieldError, InvalidInput
from chalicelib.domain.models import Erasure, ErasureScope, Page
from chalicelib.domain.recipients import AddressError, normalize_e164, normalize_email
from chalicelib.domain.responses import SUPPRESSION_CHANNELS
from chalicelib.operations import erasure
from chalicelib.store import erasures

bp = Blueprint(__name__)
_BOOLEANS = {"true": True, "false": False}


def erasure_view(item: dict[str, Any]) -> Erasure:
    return Erasure(
        id=item["id"],
        status=item["status"],
        scope=ErasureScope(**item["scope"]),
        subject=item["subject"],
        requested_by=item["requested_by"],
        counts={name: int(value) for name, value in (item.get("counts") or {}).items()},
        waiting_for=int(item.get("waiting_for", 0)),
        sending=bool(item.get("sending", False)),
        runs=int(item.get("runs", 0)),
        created_at=iso(item["created_at"]) or "",
        updated_at=iso(item.get("updated_at")),
        completed_at=iso(item.get("completed_at")),
    )


def _parse(request: Any) -> dict[str, Any]:
    """The erasure asked for, or InvalidInput naming the field (nothing is written before this passes)."""
    raw_destination, raw_id = query_str(request, "destination"), query_str(request, "recipient_id")
    if raw_destination is not None and raw_id is not None:
        raise InvalidInput(
            detail="name the person by destination or by recipient_id, not both",
            errors=[FieldError("recipient_id", "not with destination")],
        )
    if not raw_destination and not raw_id:
        raise InvalidInput.on("destination", "name the person to erase (destination, or recipient_id)")
    destination = None
    if raw_destination:
        try:
            is_email = "@" in raw_destination
            destination = normalize_email(raw_destination) if is_email else normalize_e164(raw_destination)
        except AddressError as exc:
            raise InvalidInput.on("destination", str(exc)) from None
    if raw_id is not None and (not re.fullmatch(RECIPIENT_ID_PATTERN, raw_id) or raw_id != raw_id.strip()):
        raise InvalidInput.on("recipient_id", "1 to 128 characters, no '/' nor control characters")
    raw_suppress = query_str(request, "suppress")
    if raw_suppress is not None and raw_suppress not in _BOOLEANS:
        raise InvalidInput.on("suppress", "true or false")
    channel = query_str(request, "channel") or "all"
    if channel not in SUPPRESSION_CHANNELS:
        raise InvalidInput.on("channel", f"one of {', '.join(SUPPRESSION_CHANNELS)}")
    if destination and channel not in ("all", "email") and "@" in destination:
        raise InvalidInput.on("channel", f"an email address is suppressed on email, not {channel}")
    if destination and channel == "email" and "@" not in destination:
        raise InvalidInput.on("channel", "a phone number is not suppressed on email")
    return {
        "destination": destination,
        "recipient_id": raw_id,
        "suppress": _BOOLEANS[raw_suppress] if raw_suppress is not None else True,
        "channel": channel,
    }


@route(bp, "/recipients", methods=["DELETE"], status=202)
def erase_recipient(account: str) -> Erasure:
    request = bp.current_request
    asked = _parse(request)
    requested_by = "key:" + hashlib.sha256(bearer_token(request).encode()).hexdigest()[:16]
    return erasure_view(erasure.request(account, requested_by=requested_by, **asked))


@route(bp, "/erasures", methods=["GET"])
def list_erasures(account: str) -> Page[Erasure]:
    items, token = paged(
        bp.current_request,
        f"{account}/erasures",
        lambda after, limit: erasures.page(account, after=after, limit=limit),
    )
    return Page[Erasure](items=[erasure_view(item) for item in items], next_page_token=token)


@route(bp, "/erasures/{erasure_id}", methods=["GET"])
def get_erasure(account: str, erasure_id: str) -> Erasure:
    return erasure_view(erasures.get(account, erasure_id))
