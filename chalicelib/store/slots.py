"""A campaign's concurrency slots: at most `max_concurrent` attempts of the campaign under way at once,
however many dispatch invocations send it (decision 28).

Slot `i` is an item beside the campaign's META, `sk = SLOT#<i>`, present only while held: its `holder`
(the dispatch invocation holding it) and `lease_until`. Taking a slot is a conditional write that
succeeds where no item is, or where the holder's lease has run out (a worker that died holding it); giving
it back deletes the item if the holder still holds it. A slot left by a dead worker is free again at its
lease's end, and its item goes with the table's TTL (`purge_at`) if nobody takes it.
"""

from __future__ import annotations

import random

from chalicelib.settings import get_settings
from chalicelib.store import aws

PREFIX = "SLOT#"
# A leaked slot's item is purged by TTL this long after its lease ends (if not taken again before).
PURGE_AFTER_SECONDS = 86_400


def sk_for(index: int) -> str:
    return f"{PREFIX}{index:05d}"


def index_of(sk: str) -> int:
    return int(sk.removeprefix(PREFIX))


def held(campaign_pk: str, now: float) -> dict[int, str]:
    """The slots held now (lease not run out): index -> holder. One Query of small items."""
    items = aws.query_all(
        {
            "TableName": get_settings().main_table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": aws.to_values({":pk": campaign_pk, ":prefix": PREFIX}),
            "ConsistentRead": True,
        }
    )
    return {
        index_of(item["sk"]): str(item["holder"])
        for item in (aws.from_item(raw) for raw in items)
        if float(item["lease_until"]) > now
    }


def take_one(campaign_pk: str, size: int, holder: str, lease_until: float, now: float) -> int | None:
    """Take a free slot below `size` for `holder` until `lease_until`; None when every one is held."""
    taken = held(campaign_pk, now)
    free = [index for index in range(size) if index not in taken]
    random.shuffle(free)  # takers that read the same free slots try them in different orders
    for index in free:
        written = aws.write_if(
            aws.dynamodb().put_item,
            TableName=get_settings().main_table,
            Item=aws.to_item(
                {
                    "pk": campaign_pk,
                    "sk": sk_for(index),
                    "holder": holder,
                    "lease_until": lease_until,
                    "purge_at": int(lease_until + PURGE_AFTER_SECONDS),
                }
            ),
            ConditionExpression="attribute_not_exists(sk) OR lease_until < :now",
            ExpressionAttributeValues=aws.to_values({":now": now}),
        )
        if written is not None:
            return index
    return None


def give_back(campaign_pk: str, index: int, holder: str) -> bool:
    """Free a slot `holder` holds; False when it no longer does (its lease ran out and another took it)."""
    deleted = aws.write_if(
        aws.dynamodb().delete_item,
        TableName=get_settings().main_table,
        Key=aws.to_item({"pk": campaign_pk, "sk": sk_for(index)}),
        ConditionExpression="holder = :holder",
        ExpressionAttributeValues=aws.to_values({":holder": holder}),
    )
    return deleted is not None


def hand_over(campaign_pk: str, index: int, holder: str, new_holder: str, lease_until: float) -> bool:
    """Pass a slot `holder` holds to `new_holder` (a call awaiting its last event) until `lease_until`; False
    when `holder` no longer holds it."""
    written = aws.write_if(
        aws.dynamodb().update_item,
        TableName=get_settings().main_table,
        Key=aws.to_item({"pk": campaign_pk, "sk": sk_for(index)}),
        UpdateExpression="SET holder = :new, lease_until = :until, purge_at = :purge",
        ConditionExpression="holder = :holder",
        ExpressionAttributeValues=aws.to_values(
            {
                ":new": new_holder,
                ":holder": holder,
                ":until": lease_until,
                ":purge": int(lease_until + PURGE_AFTER_SECONDS),
            }
        ),
    )
    return written is not None
