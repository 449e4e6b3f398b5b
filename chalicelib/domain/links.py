"""Tracked links (decision 43): the short, signed token of `<links base URL>/l/<token>`. Pure.

A token names one recipient's link in one campaign without a write per recipient:
- `code` (6 bytes): the campaign's link catalog item for the URL's base (scheme, host, path), written once
  per distinct base and campaign (store/links.py); the catalog says the account, campaign and base;
- the recipient's id: an E.164 number packed as an integer (`+447700900123` in 6 bytes), else its UTF-8;
- the URL's query (and fragment) after its `?`, where per-recipient values go (`?c={{ code }}`);
- a MAC: HMAC-SHA256 over all of it, truncated to 6 bytes (48 bits: a forger needs ~2^47 guesses at our
  endpoint on average per link; at 10,000 requests a second that is ~450 years).

All of it base64url without padding: an E.164 recipient and a static URL make a 26-character token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

CODE_BYTES = 6
MAC_BYTES = 6
MAX_ID_BYTES = 127  # the length byte's 7 bits
MAX_URL_CHARS = 2000
PATH = "/l/"
_PHONE = re.compile(r"\+[1-9][0-9]{6,14}")
_PACKED = 0x80  # the length byte's high bit: the id is an E.164 number packed as an integer


class LinkError(ValueError):
    """A URL that cannot be tracked, or a token that is not one of ours."""


@dataclass(frozen=True)
class LinkRef:
    """What a verified token says: the catalog item's code, the recipient, and the URL's query part."""

    code: bytes
    recipient_id: str
    query: str


def check_url(url: str) -> str:
    """The URL as it will be tracked (surrounding spaces dropped); LinkError unless an absolute http(s) URL
    with a host, of at most MAX_URL_CHARS characters, without spaces or control characters."""
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise LinkError(f"a URL of at most {MAX_URL_CHARS:,} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise LinkError(f"{url[:80]!r} holds spaces or control characters: encode them (%20)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError as exc:
        raise LinkError(f"{url[:80]!r} is not a URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise LinkError(f"{url[:80]!r} is not an http or https URL with a host")
    return url


def split_url(url: str) -> tuple[str, str]:
    """(base, query): the part the catalog keeps (up to the `?`) and the part each token carries."""
    base, mark, query = url.partition("?")
    return base, query if mark else ""


def join_url(base: str, query: str) -> str:
    return f"{base}?{query}" if query else base


def link_code(key: bytes, account: str, campaign_id: str, base: str, salt: int = 0) -> bytes:
    """The catalog code of a campaign's URL base: the same in every process (so writing it is idempotent),
    unguessable without the key; `salt` picks the next one if a code is taken by another base."""
    message = "\x00".join((account, campaign_id, base, str(salt))).encode()
    return hmac.new(key, b"code\x00" + message, hashlib.sha256).digest()[:CODE_BYTES]


def _pack_id(recipient_id: str) -> bytes:
    if _PHONE.fullmatch(recipient_id):
        number = int("1" + recipient_id[1:])  # the leading 1 keeps the digit count
        packed = number.to_bytes((number.bit_length() + 7) // 8, "big")
        return bytes([_PACKED | len(packed)]) + packed
    raw = recipient_id.encode()
    if len(raw) > MAX_ID_BYTES:
        raise LinkError(f"recipient ids over {MAX_ID_BYTES} bytes cannot be tracked")
    return bytes([len(raw)]) + raw


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, b"link1\x00" + payload, hashlib.sha256).digest()[:MAC_BYTES]


def sign(key: bytes, code: bytes, recipient_id: str, query: str) -> str:
    """The token of one recipient's link."""
    payload = code + _pack_id(recipient_id) + query.encode()
    return base64.urlsafe_b64encode(payload + _mac(key, payload)).rstrip(b"=").decode()


def verify(key: bytes, token: str) -> LinkRef:
    """What a token says, once its MAC is checked; LinkError for anything we did not sign."""
    if not 0 < len(token) <= 4 * MAX_URL_CHARS or not re.fullmatch(r"[A-Za-z0-9_-]+", token):
        raise LinkError("not a link token")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        raise LinkError("not a link token") from None
    payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if len(payload) < CODE_BYTES + 1 or not hmac.compare_digest(mac, _mac(key, payload)):
        raise LinkError("not a link token")
    code, header = payload[:CODE_BYTES], payload[CODE_BYTES]
    size = header & ~_PACKED
    packed = payload[CODE_BYTES + 1 : CODE_BYTES + 1 + size]
    rest = payload[CODE_BYTES + 1 + size :]
    try:
        recipient_id = "+" + str(int.from_bytes(packed, "big"))[1:] if header & _PACKED else packed.decode()
        return LinkRef(code, recipient_id, rest.decode())
    except (UnicodeDecodeError, ValueError):  # signed by us, so never; but never a 500 either
        raise LinkError("not a link token") from None


def encode_code(code: bytes) -> str:
    return base64.urlsafe_b64encode(code).decode()
