"""Opaque page tokens: the position, signed with the account and resource it belongs to.

A token cannot be forged or carried to another account's list: its signature would not match.
Any token this API did not issue for the resource is a 400 naming `page_token`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from chalicelib.domain.errors import FieldError, MalformedRequest
from chalicelib.settings import get_settings

MAX_TOKEN_LENGTH = 2048  # tokens we issue are a key (a phone number) and 32 hex digits: far shorter


def _signature(scope: str, position: str) -> str:
    key = get_settings().page_token_secret.encode()
    return hmac.new(key, f"{scope}\n{position}".encode(), hashlib.sha256).hexdigest()[:32]


def encode(scope: str, position: str | None) -> str | None:
    if position is None:
        return None
    raw = f"{position}\n{_signature(scope, position)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _not_ours(reason: str) -> MalformedRequest:
    return MalformedRequest(detail=f"page_token: {reason}", errors=[FieldError("page_token", reason)])


def decode(scope: str, token: str | None) -> str | None:
    if not token:
        return None  # `page_token=` asks for the first page
    if len(token) > MAX_TOKEN_LENGTH:
        raise _not_ours("not a page token this API issued")
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True).decode()
        position, signature = raw.rsplit("\n", 1)
    except (ValueError, UnicodeError, binascii.Error):
        raise _not_ours("not a page token this API issued") from None
    # Bytes, not str: compare_digest refuses str with non-ASCII characters.
    if not hmac.compare_digest(signature.encode(), _signature(scope, position).encode()):
        raise _not_ours("not a page token this API issued for this resource")
    return position
