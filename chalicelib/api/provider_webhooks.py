"""The provider's webhooks into the API (decision 40), each signed by Vonage (HS256 with the signature
secret, the body's SHA-256 as `payload_hash`): unsigned, tampered, stale or replayed callbacks get 401 and
change nothing.

- `POST /v1/webhooks/vonage/inbound`: recipients' messages to the account's numbers (STOP, START, HELP).
- `POST /v1/webhooks/vonage/status`: message-status callbacks (delivery receipts)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from chalice.app import Request

from chalicelib.api.http import parse_body, route
from chalicelib.channels.vonage_signature import MAX_AGE_SECONDS, SignatureRefused, verify
from chalicelib.domain.errors import Unauthorized
from chalicelib.domain.models import InboundMessage, InboundResult, MessageStatus, ReceiptResult
from chalicelib.operations import responses
from chalicelib.settings import get_settings
from chalicelib.store import replays
from chalicelib.store.secrets import SecretGone, read_secret

bp = Blueprint(__name__)


def signed_callback(request: Request) -> dict[str, Any]:
    """The claims of a callback signed by Vonage, seen for the first time; Unauthorized otherwise."""
    try:
        secret = read_secret(get_settings().vonage_signature_secret)
        raw = request.raw_body or b""
        claims = verify(request.headers.get("authorization"), raw.encode() if isinstance(raw, str) else raw, secret)
    except (SignatureRefused, SecretGone) as exc:
        raise Unauthorized(detail=str(exc)) from None
    if not replays.first_use(str(claims["jti"]), float(claims["iat"]) + 2 * MAX_AGE_SECONDS):
        raise Unauthorized(detail="the callback was seen before (its token's jti): a replay")
    return claims


@route(bp, "/webhooks/vonage/inbound", methods=["POST"], auth="none")
def inbound_message() -> InboundResult:
    signed_callback(bp.current_request)
    message = parse_body(bp.current_request, InboundMessage)
    return InboundResult(result=responses.inbound(message.model_dump(by_alias=True)))


@route(bp, "/webhooks/vonage/status", methods=["POST"], auth="none")
def message_status() -> ReceiptResult:
    signed_callback(bp.current_request)
    status = parse_body(bp.current_request, MessageStatus)
    return ReceiptResult(result=responses.receipt(status.model_dump()))
