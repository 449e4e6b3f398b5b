"""WhatsApp's customer service window (decision 46): a business may send free-form text (a session message)
to a person only within 24 hours of that person's last message to the business number; outside it, only an
approved template. Pure rules; the items are in chalicelib.store.sessions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

WINDOW_SECONDS = 24 * 3600
# A send checked this close to the window's end is not made: the time between the check and the provider
# taking the message (the claim, the send clock's slip, the request) and the clocks' skew fit well inside it.
MARGIN_SECONDS = 60.0
# The item outlives the window a little (DynamoDB's TTL deletes late anyway: the rule reads `at`, never the
# item's presence).
KEEP_SECONDS = WINDOW_SECONDS + 3600


def window_open(last_inbound_at: float | None, now: float, margin: float = MARGIN_SECONDS) -> bool:
    """Whether a session message checked at `now` may go: the person's last inbound message (None: none kept)
    was less than 24 hours, less the margin, before. (The time is written no later than its arrival, so a
    provider's clock ahead of ours never stretches a window.)"""
    if last_inbound_at is None:
        return False
    return now < last_inbound_at + WINDOW_SECONDS - margin


def sends_session(part: Mapping[str, Any]) -> bool:
    """Whether a campaign (or its effective part: a segment's or the fallback's channel) sends WhatsApp session
    text: channel whatsapp and no approved template."""
    return part.get("channel") == "whatsapp" and not part.get("whatsapp")
