"""Suppressions and inbound numbers (decision 40).

- `POST /v1/suppressions` suppresses a destination on a channel (or `all`); `GET` pages through them (by
  `channel`, or one `destination`); `DELETE /v1/suppressions?destination=&channel=` lifts one.
- `POST /v1/numbers` registers a number the account takes replies on, with its HELP text; `GET` lists them;
  `DELETE /v1/numbers?number=` gives one up. Inbound messages to a number no account has are refused."""

from __future__ import annotations

from typing import Any, get_args

from chalice import Blueprint

from chalicelib.api.http import paged, parse_body, query_str, route
from chalicelib.api.views import iso
from chalicelib.domain.errors import InvalidInput, NotFound
from chalicelib.domain.models import (
    INBOUND_VIBER_ID,
    Number,
    NumberChannel,
    NumberCreate,
    Page,
    Suppression,
    SuppressionCreate,
    SuppressionResult,
)
from chalicelib.domain.recipients import MESSENGER_ID, AddressError, normalize_e164
from chalicelib.domain.responses import SUPPRESSION_CHANNELS, scopes_for, suppressed_destination
from chalicelib.store import numbers, suppressions

bp = Blueprint(__name__)
NUMBER_CHANNELS: tuple[str, ...] = get_args(NumberChannel)


def _destination(raw: str, channel: str) -> str:
    """The destination as recipients' destinations hold it: an email for `email`, a page-scoped id for
    `messenger`, a number for the others (either for `all`); InvalidInput naming `destination` otherwise."""
    try:
        return suppressed_destination(raw, channel)
    except AddressError as exc:
        raise InvalidInput.on("destination", str(exc)) from None


def _channel(raw: str | None, *, required: bool, choices: tuple[str, ...] = SUPPRESSION_CHANNELS) -> str | None:
    if raw is None and not required:
        return None
    if raw not in choices:
        raise InvalidInput.on("channel", f"one of {', '.join(choices)}")
    return raw


def suppression_view(item: dict[str, Any]) -> Suppression:
    return Suppression(
        destination=item.get("destination"),
        scope=item["scope"],
        source=item["source"],
        reason=item.get("detail"),
        created_at=iso(item["created_at"]) or "",
    )


@route(bp, "/suppressions", methods=["POST"], status=201)
def add_suppression(account: str) -> SuppressionResult:
    body = parse_body(bp.current_request, SuppressionCreate)
    destination = _destination(body.destination, body.channel)
    scopes = scopes_for(body.channel)
    suppressions.add(account, scopes, destination, "api", body.reason)
    return SuppressionResult(destination=destination, scopes=list(scopes))


@route(bp, "/suppressions", methods=["GET"])
def list_suppressions(account: str) -> Page[Suppression]:
    request = bp.current_request
    channel = _channel(query_str(request, "channel"), required=False) or "all"
    scopes = scopes_for(channel)
    wanted = query_str(request, "destination")
    if wanted is not None:  # one destination: where it is suppressed, in one BatchGetItem
        destination = _destination(wanted, channel)
        items = suppressions.items(account, list(scopes), destination)
        return Page[Suppression](items=[suppression_view(item) for item in items], next_page_token=None)
    items, token = paged(
        request,
        f"{account}/suppressions/{channel}",
        lambda after, limit: suppressions.suppressions_page(account, scopes, after=after, limit=limit),
    )
    return Page[Suppression](items=[suppression_view(item) for item in items], next_page_token=token)


@route(bp, "/suppressions", methods=["DELETE"])
def lift_suppression(account: str) -> SuppressionResult:
    request = bp.current_request
    channel = str(_channel(query_str(request, "channel"), required=True))
    raw = query_str(request, "destination")
    if not raw:
        raise InvalidInput.on("destination", "name the destination to lift the suppression of")
    destination = _destination(raw, channel)
    lifted = [scope for scope in scopes_for(channel) if suppressions.remove(account, [scope], destination)]
    if not lifted:
        raise NotFound(detail=f"{destination} is not suppressed on {channel}")
    return SuppressionResult(destination=destination, scopes=lifted)


def _number(raw: str, channel: str) -> str:
    """The number in E.164 (`sms`), or the Viber service id or Facebook page id (digits, as a campaign's
    `sender` and Vonage's inbound messages give them: never a '+', so never the same key as a number), or
    InvalidInput naming `number`."""
    try:
        if channel == "sms":
            return normalize_e164(raw)
        pattern = INBOUND_VIBER_ID if channel == "viber_service" else MESSENGER_ID
        if not pattern.match(raw.strip()):
            what = "letters and digits" if channel == "viber_service" else "digits"
            raise AddressError("invalid_address", f"a {channel} id is {what} only, 50 at most")
        return raw.strip()
    except AddressError as exc:
        raise InvalidInput.on("number", str(exc)) from None


def number_view(item: dict[str, Any]) -> Number:
    return Number(
        number=item["number"],
        channel=item.get("channel", "sms"),
        help_text=item["help_text"],
        created_at=iso(item["created_at"]) or "",
    )


@route(bp, "/numbers", methods=["POST"], status=201)
def register_number(account: str) -> Number:
    body = parse_body(bp.current_request, NumberCreate)
    return number_view(numbers.register(account, _number(body.number, body.channel), body.help_text, body.channel))


@route(bp, "/numbers", methods=["GET"])
def list_numbers(account: str) -> Page[Number]:
    items, token = paged(
        bp.current_request,
        f"{account}/numbers",
        lambda after, limit: numbers.numbers_page(account, after=after, limit=limit),
    )
    return Page[Number](items=[number_view(item) for item in items], next_page_token=token)


@route(bp, "/numbers", methods=["DELETE"], status=204)
def release_number(account: str) -> None:
    raw = query_str(bp.current_request, "number")
    if not raw:
        raise InvalidInput.on("number", "name the number to give up")
    channel = str(_channel(query_str(bp.current_request, "channel") or "sms", required=True, choices=NUMBER_CHANNELS))
    numbers.release(account, _number(raw, channel))
