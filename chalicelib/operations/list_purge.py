"""Remove a cleared or deleted list's items, as much as the time allows, then queue the rest.

The API queues the job (delayed) before it deletes or clears the list, so a job is never lost to a
failed send; the job then checks that the delete or clear did happen, and does nothing otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.domain.errors import NotFound
from chalicelib.settings import get_settings
from chalicelib.store import list_items, lists


def queue_purge(account_id: str, list_id: str, below_generation: int | None) -> None:
    """Queue the purge that a delete (`below_generation` None) or a clear to that generation needs."""
    delay = get_settings().list_purge_delay_seconds
    list_items.send_purge_job(account_id, list_id, below_generation, delay=delay)


def purge_list(
    account_id: str, list_id: str, below_generation: int | None, after: str | None, time_left: Callable[[], float]
) -> int:
    """Delete the items (older than `below_generation`, or all once the list is gone); how many. A
    continuation job carries on from where the time budget stopped it."""
    try:
        meta = lists.get_list(account_id, list_id)
    except NotFound:
        below_generation = None  # deleted: every item goes
    else:
        if below_generation is None or lists.generation_of(meta) < below_generation:
            return 0  # the delete or the clear this job was queued for was refused
    deleted, position = list_items.purge_items(
        account_id, list_id, below_generation=below_generation, after=after, time_left=time_left
    )
    if position is not None:
        list_items.send_purge_job(account_id, list_id, below_generation, position)
    return deleted
