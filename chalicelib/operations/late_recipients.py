"""Recipients added to a list while campaigns run on it (decision 24): a campaign with `end_handle: continue`
takes them (its total grows and its pacer makes another pass over the list from when they were added); one
with `end_handle: stop` counts them as `not_included`. One BatchGetItem of the campaigns the list records and
one conditional write per campaign running or paused on it, per write of recipients (not per recipient)."""

from __future__ import annotations

from chalicelib.domain.campaign import EndHandle
from chalicelib.observability import logger
from chalicelib.store import campaigns, keys, list_catalog
from chalicelib.store.lists import Added

PROJECTION = "id, #s, end_handle, started_at_ms"


def tell_campaigns(account_id: str, added: Added) -> None:
    """Tell the campaigns running on the list of the recipients `added` counted. A failure is logged, not
    raised: the recipients are in the list either way, and a retried request or batch finds them listed."""
    if not added.counted or added.meta is None:
        return
    try:
        for campaign in list_catalog.campaigns_using(account_id, added.meta, PROJECTION):
            started = campaign.get("started_at_ms")
            if started is None or int(started) >= added.added_at:
                continue  # the campaign's first pass reads them (the list as it stood at its start)
            handle = EndHandle(campaign.get("end_handle", EndHandle.STOP))
            pk = keys.campaign_pk(account_id, campaign["id"])
            campaigns.note_late_recipients(pk, handle, added.counted, added.added_at)
    except Exception:
        logger.exception("telling the list's campaigns of new recipients failed", extra={"list": added.meta.get("id")})
