"""Opaque page tokens: the position, signed with the account and resource it belongs to.

A token cannot be forged or carried to another account's list: its signature would not match.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from chalicelib.domain.errors import InvalidInput
from chalicelib.settings import get_settings


def _signature(scope: str, position: str) -> str:
    key = get_settings().page_token_secret.encode()
    return hmac.new(key, f"{scope}\n{position}".encode(), hashlib.sha256).hexdigest()[:32]


def encode(scope: str, position: str | None) -> str | None:
    if position is None:
        return None
    raw = f"{position}\n{_signature(scope, position)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(scope: str, token: str | None) -> str | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        position, signature = raw.rsplit("\n", 1)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput.on("page_token", "not a page token this API issued") from None
    if not hmac.compare_digest(signature, _signature(scope, position)):
        raise InvalidInput.on("page_token", "not a page token this API issued for this resource")
    return position
