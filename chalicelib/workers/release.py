"""The scheduled pacer tick: release for every running campaign, and complete the ones that are done."""

from __future__ import annotations

import time

from chalicelib.observability import logger
from chalicelib.operations import pacer
from chalicelib.store import campaigns


def release_due_recipients(now: float | None = None) -> int:
    """One tick over every running campaign; returns how many recipients were released."""
    now = time.time() if now is None else now
    released = 0
    for pk in campaigns.running_campaign_pks():
        try:
            released += pacer.release_campaign(pk, now=now)
        except Exception:  # one campaign's trouble must not stall the others
            logger.exception("release failed", extra={"campaign": pk})
    return released
