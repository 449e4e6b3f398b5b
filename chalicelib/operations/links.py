"""Tracked links and conversions (decision 43).

- Sending: `tracker()` gives the render what the `track` filter calls: a recipient's short signed link, its
  URL's base put in the campaign's link catalog once per process (cached), nothing written per recipient.
- A click (`GET /l/<token>`): the token verified, the catalog read (cached), the delivery's `clicks` counted
  by one UpdateItem; the deliveries stream turns it into `recipient.clicked` and the counters.
- A conversion (`POST /v1/campaigns/{id}/conversions`): one UpdateItem on the recipient's delivery; the
  stream turns it into `recipient.converted` and the counters likewise.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.domain import links
from chalicelib.domain.errors import InvalidInput, NotFound
from chalicelib.domain.template import TemplateError, Tracker
from chalicelib.settings import get_settings
from chalicelib.store import deliveries, keys
from chalicelib.store import links as catalog
from chalicelib.store.secrets import SecretGone, read_secret

COLLISION_TRIES = 4  # codes tried for one base before giving up (a collision is ~1 in 10^8 per pair)
FUTURE_SKEW_SECONDS = 300  # a conversion's occurred_at may be this far ahead of our clock


def signing_key() -> bytes:
    """The links' HMAC key: the Secrets Manager secret named by LINK_SIGNING_SECRET (cached five minutes per
    container), else one derived from PAGE_TOKEN_SECRET."""
    settings = get_settings()
    secret = read_secret(settings.link_signing_secret) if settings.link_signing_secret else settings.page_token_secret
    return hmac.new(secret.encode(), b"bulk-campaign-api links", hashlib.sha256).digest()


def base_url() -> str:
    base = (get_settings().links_base_url or get_settings().webhook_base_url).rstrip("/")
    if not base:
        raise TemplateError("track: LINKS_BASE_URL is not configured, so a tracked link could not be followed")
    return base


def _code(key: bytes, account: str, campaign_id: str, base: str, buckets: int) -> bytes:
    """The catalog code of the campaign's base, recorded if this process has not recorded it lately."""
    cached = catalog.cached_code(account, campaign_id, base)
    if cached is not None:
        return bytes.fromhex(cached)
    for salt in range(COLLISION_TRIES):
        code = links.link_code(key, account, campaign_id, base, salt)
        try:
            if catalog.put(code.hex(), account, campaign_id, base, buckets):
                return code
        except catalog.CatalogUnavailable as exc:  # the recipient fails as not sendable, not as unknown
            raise TemplateError(f"track: {exc}") from None
    raise TemplateError(f"track: no free link code for {base[:80]!r}")


def tracker(campaign: dict[str, Any], recipient_id: str) -> Tracker:
    """What `{{ url | track }}` calls when dispatch renders a recipient's message."""
    account, campaign_id = keys.split_campaign_pk(campaign["pk"])
    buckets = int(campaign.get("buckets", 1))

    def track(url: str) -> str:
        try:
            key, prefix = signing_key(), base_url()
        except SecretGone as exc:  # not sent, and said why (not an unknown outcome)
            raise TemplateError(f"track: the links' signing key cannot be read: {exc}") from None
        base, query = links.split_url(url)
        try:
            token = links.sign(key, _code(key, account, campaign_id, base, buckets), recipient_id, query)
        except links.LinkError as exc:
            raise TemplateError(f"track: {exc}") from None
        return f"{prefix}{links.PATH}{token}"

    return track


def preview_tracker(account: str, recipient_id: str) -> Tracker:
    """The template preview's: a link of the same shape and length, for a sample recipient, recorded nowhere
    (it does not lead anywhere: 404)."""

    def track(url: str) -> str:
        key = signing_key()
        base, query = links.split_url(url)
        code = links.link_code(key, account, "preview", base)
        try:
            return f"{base_url()}{links.PATH}{links.sign(key, code, recipient_id, query)}"
        except links.LinkError as exc:
            raise TemplateError(f"track: {exc}") from None

    return track


@dataclass(frozen=True)
class Followed:
    url: str
    counted: bool


def follow(token: str, *, count: bool) -> Followed:
    """Where a link token leads (NotFound for one we did not sign or whose catalog item is gone), its click
    counted on the recipient's delivery when `count` (a GET; not a HEAD: bots and link previews)."""
    try:
        ref = links.verify(signing_key(), token)
    except links.LinkError:
        raise NotFound(detail="this link does not exist") from None
    item = catalog.get(ref.code.hex())
    if item is None:
        raise NotFound(detail="this link does not exist (or has expired)")
    url = links.join_url(str(item["base"]), ref.query)
    if not count:
        return Followed(url, counted=False)
    pk = deliveries.pk_for(
        keys.campaign_pk(item["account"], item["campaign_id"]), int(item["buckets"]), ref.recipient_id
    )
    return Followed(url, counted=deliveries.record_click(pk, ref.recipient_id, time.time()))


def convert(
    campaign: dict[str, Any], recipient_id: str, goal: str, value: float | None, at: datetime | None
) -> dict[str, Any]:
    """Record a conversion on the recipient's delivery; NotFound when the campaign has none for it."""
    now = time.time()
    occurred = at.timestamp() if at is not None else now
    if occurred > now + FUTURE_SKEW_SECONDS:
        raise InvalidInput.on("occurred_at", "must not be in the future")
    pk = deliveries.pk_for(campaign["pk"], int(campaign.get("buckets", 1)), recipient_id)
    updated = deliveries.record_conversion(pk, recipient_id, goal, occurred, value)
    if updated is None:
        raise NotFound(detail=f"recipient {recipient_id[:64]!r} has no delivery in this campaign")
    return updated
