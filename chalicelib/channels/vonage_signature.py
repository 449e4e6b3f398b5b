"""Vonage's signed webhooks: each callback carries `Authorization: Bearer <JWT>`, HS256-signed with the
account's signature secret, whose `payload_hash` is the SHA-256 (hex) of the body. A callback unsigned,
signed with another secret, with a body that is not the one signed, too old, or replayed is refused."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import jwt

# A token issued longer ago than this (or this far in the future: clocks drift) is refused.
MAX_AGE_SECONDS = 300


class SignatureRefused(ValueError):
    """Why a callback's signature is not accepted."""


def verify(authorization: str | None, body: bytes, secret: str, now: float | None = None) -> dict[str, Any]:
    """The token's claims, or SignatureRefused; replays are for the caller to refuse (by `jti`)."""
    if not secret:
        raise SignatureRefused("no signature secret is configured: signed callbacks cannot be checked")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise SignatureRefused("the callback is not signed (no Bearer token)")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={"require": ["iat", "jti", "payload_hash"], "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise SignatureRefused(f"the callback's signature is not valid: {exc}") from None
    moment = time.time() if now is None else now
    if abs(moment - float(claims["iat"])) > MAX_AGE_SECONDS:
        raise SignatureRefused(f"the callback's token was issued over {MAX_AGE_SECONDS} s from now")
    if not hmac.compare_digest(str(claims["payload_hash"]), hashlib.sha256(body).hexdigest()):
        raise SignatureRefused("the callback's body is not the one signed (payload_hash)")
    return claims
