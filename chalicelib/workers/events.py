"""The event log's consumer of the deliveries stream (beside the counters' own): each batch's events are
written once to the log, handed to the account's webhooks and counted in the campaigns' timelines
(operations/events.py); the messages sent from the account's numbers are noted, for the replies to them
(operations/replies.py)."""

from __future__ import annotations

from typing import Any

from chalicelib.operations import events, replies


def record_delivery_changes(event: dict[str, Any]) -> None:
    records = event.get("Records", [])
    found = events.from_stream(records)
    if found:
        # The object's name: the batch's first record (a retried batch is the same batch, the same name).
        events.record([event for event, _, _ in found], records[0]["dynamodb"]["SequenceNumber"])
        events.count(found)
        replies.link_sends(found)
