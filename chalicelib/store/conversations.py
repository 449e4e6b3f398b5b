"""Who an account last messaged from each of its numbers (decision 45), so that a reply is linked to the
campaign and recipient it answers.

`<account>#CONV#<number>` / `<destination>`: the campaign, recipient, channel and time of the last message
sent from the number to the destination, for 30 days. Written from the deliveries stream (the events
consumer), 25 to a BatchWriteItem, only for campaigns that send from a number the account registered (only
those can be replied to), never in the send path.
"""

from __future__ import annotations

import time
from typing import Any

from chalicelib.settings import get_settings
from chalicelib.store import aws, keys

KEEP_SECONDS = 30 * 86_400


def note(sent: list[dict[str, Any]]) -> None:
    """Record sends: each `{account, number, destination, campaign_id, recipient_id, channel, at}`. Of two
    sends to one destination in a batch the later is kept."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for one in sent:
        key = (keys.conversation_pk(one["account"], one["number"]), one["destination"])
        if key not in latest or latest[key]["at"] <= one["at"]:
            latest[key] = one
    items = [
        {
            "pk": pk,
            "sk": destination,
            "campaign_id": one["campaign_id"],
            "recipient_id": one["recipient_id"],
            "channel": one["channel"],
            "at": one["at"],
            "purge_at": int(one["at"] + KEEP_SECONDS),
            # An `every` campaign's message: its delivery's key, `<recipient id>/<slot>` (decision 49).
            **({"delivery": one["delivery"]} if one.get("delivery") else {}),
        }
        for (pk, destination), one in latest.items()
    ]
    if items:
        aws.batch_put(get_settings().main_table, items)


def last(account_id: str, number: str, destination: str) -> dict[str, Any] | None:
    """The campaign and recipient the account last messaged `destination` for from `number`, or None."""
    found = aws.dynamodb().get_item(
        TableName=get_settings().main_table,
        Key=aws.to_item({"pk": keys.conversation_pk(account_id, number), "sk": destination}),
    )
    item = aws.from_item(found["Item"]) if "Item" in found else None
    if item is None or float(item.get("purge_at", 0)) < time.time():
        return None
    return item
