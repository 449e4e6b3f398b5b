"""An account's lists as a whole: the index that pages them newest first, renaming, the campaigns that
use a list, deleting and clearing it. Each is O(1) writes; a list's items are purged by a worker.

The index is one item per list under `<account>#LISTS` (sort key `L#<created ms>#<list id>`), written
beside the list's META at creation: a Query on it pages the lists in creation order, never a Scan.
A list records the campaigns started on it (`campaign_ids`, with a `uses` version that moves on each
addition): deleting or clearing it reads those campaigns' statuses and is conditioned on that version,
so a campaign starting meanwhile cannot slip past the check.
"""

from __future__ import annotations

import time
from typing import Any

from chalicelib.domain.campaign import CampaignStatus
from chalicelib.domain.errors import Conflict, FieldError, InvalidInput, NotFound
from chalicelib.settings import get_settings
from chalicelib.store import aws, keys
from chalicelib.store.lists import generation_of, get_list, in_generation

# A campaign in these states still reads its list (release pages through it).
USING_STATES = (CampaignStatus.RUNNING.value, CampaignStatus.PAUSED.value)


def _table() -> str:
    return get_settings().main_table


def lists_page(account_id: str, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """The account's lists, newest first: one Query on the index, one BatchGetItem per 100 lists for
    their METAs (name and count live there only). An index item whose list is gone is skipped."""
    params: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": aws.to_values({":pk": keys.lists_index_pk(account_id)}),
        "ScanIndexForward": False,
        "Limit": limit,
        "ConsistentRead": True,
    }
    if after:
        params["ExclusiveStartKey"] = aws.to_item({"pk": keys.lists_index_pk(account_id), "sk": after})
    answer = aws.dynamodb().query(**params)
    ids = [item["id"]["S"] for item in answer.get("Items", [])]
    metas = _batch_get([{"pk": keys.list_pk(account_id, i), "sk": keys.META} for i in ids])
    by_id = {meta["id"]: meta for meta in metas}
    last = answer.get("LastEvaluatedKey")
    return [by_id[i] for i in ids if i in by_id], (last["sk"]["S"] if last else None)


def _batch_get(
    wanted: list[dict[str, str]], projection: str | None = None, names: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    return aws.batch_get(_table(), wanted, projection=projection, names=names)


def rename_list(account_id: str, list_id: str, name: str) -> dict[str, Any]:
    answer = aws.write_if(
        aws.dynamodb().update_item,
        TableName=_table(),
        Key=aws.to_item({"pk": keys.list_pk(account_id, list_id), "sk": keys.META}),
        UpdateExpression="SET #n = :name",
        ConditionExpression="attribute_exists(pk)",
        ExpressionAttributeNames={"#n": "name"},
        ExpressionAttributeValues=aws.to_values({":name": name}),
        ReturnValues="ALL_NEW",
    )
    if answer is None:
        raise NotFound(detail=f"list {list_id} does not exist")
    return aws.from_item(answer["Attributes"])


def mark_used_by(account_id: str, list_id: str, campaign_id: str) -> dict[str, Any]:
    """Record that a campaign is starting on the list (before its status changes, so a delete that reads
    the campaigns afterwards sees it); the list's META, or InvalidInput when the list was deleted."""
    answer = aws.write_if(
        aws.dynamodb().update_item,
        TableName=_table(),
        Key=aws.to_item({"pk": keys.list_pk(account_id, list_id), "sk": keys.META}),
        UpdateExpression="ADD campaign_ids :c, uses :one",
        ConditionExpression="attribute_exists(pk)",
        ExpressionAttributeValues={":c": {"SS": [campaign_id]}, ":one": {"N": "1"}},
        ReturnValues="ALL_NEW",
    )
    if answer is None:
        raise InvalidInput.on("list_id", f"the campaign's list {list_id} was deleted")
    return aws.from_item(answer["Attributes"])


def campaigns_using(account_id: str, meta: dict[str, Any], projection: str = "id, #s") -> list[dict[str, Any]]:
    """The campaigns running or paused on the list whose META this is (one BatchGetItem per 100 campaigns
    it records), with the `projection` of their METAs (`#s` is the status)."""
    ids = sorted(meta.get("campaign_ids") or [])
    wanted = [{"pk": keys.campaign_pk(account_id, c), "sk": keys.META} for c in ids]
    found = _batch_get(wanted, projection, {"#s": "status"}) if wanted else []
    return sorted((c for c in found if c.get("status") in USING_STATES), key=lambda c: str(c["id"]))


def _refuse_if_in_use(account_id: str, meta: dict[str, Any], doing: str) -> None:
    using = [c["id"] for c in campaigns_using(account_id, meta)]
    if using:
        raise Conflict(
            detail=f"cannot {doing} list {meta['id']}: campaign {using[0]} is running or paused on it; "
            "cancel it or let it complete first",
            errors=[FieldError("list_id", f"in use by campaign {c}") for c in using],
        )


def _guard(meta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The condition that nothing changed the list's campaigns (or generation) since `meta` was read."""
    uses = int(meta.get("uses", 0))
    condition = "attribute_exists(pk) AND " + ("uses = :uses" if uses else "attribute_not_exists(uses)")
    condition += " AND " + in_generation(generation_of(meta), "generation")
    values: dict[str, Any] = {":gen": generation_of(meta)}
    if uses:
        values[":uses"] = uses
    return condition, values


def _changed_meanwhile(list_id: str) -> Conflict:
    return Conflict(
        detail=f"list {list_id} changed while this request ran (a campaign started or it was cleared); try again",
        errors=[FieldError("list_id", "changed meanwhile")],
    )


def delete_list(account_id: str, list_id: str) -> dict[str, Any]:
    """Delete the list's META and index item unless a running or paused campaign uses it; its items are
    left for the purge worker. Returns the deleted META."""
    meta = get_list(account_id, list_id)
    _refuse_if_in_use(account_id, meta, "delete")
    condition, values = _guard(meta)
    answer = aws.write_if(
        aws.dynamodb().delete_item,
        TableName=_table(),
        Key=aws.to_item({"pk": keys.list_pk(account_id, list_id), "sk": keys.META}),
        ConditionExpression=condition,
        ExpressionAttributeValues=aws.to_values(values),
    )
    if answer is None:
        raise _changed_meanwhile(list_id)
    if meta.get("index_sk"):
        aws.dynamodb().delete_item(
            TableName=_table(), Key=aws.to_item({"pk": keys.lists_index_pk(account_id), "sk": meta["index_sk"]})
        )
    return meta


def clear_list(account_id: str, list_id: str) -> dict[str, Any]:
    """Move the list to a new generation with a count of 0 (one write) unless a running or paused campaign
    uses it; the old generation's items are hidden at once and purged by the worker. Returns the META."""
    meta = get_list(account_id, list_id)
    _refuse_if_in_use(account_id, meta, "clear")
    condition, values = _guard(meta)
    values.update({":next": generation_of(meta) + 1, ":zero": 0, ":now": time.time(), ":none": {}})
    answer = aws.write_if(
        aws.dynamodb().update_item,
        TableName=_table(),
        Key=aws.to_item({"pk": keys.list_pk(account_id, list_id), "sk": keys.META}),
        UpdateExpression="SET generation = :next, recipient_count = :zero, cleared_at = :now, field_counts = :none",
        ConditionExpression=condition,
        ExpressionAttributeValues=aws.to_values(values),
        ReturnValues="ALL_NEW",
    )
    if answer is None:
        raise _changed_meanwhile(list_id)
    return aws.from_item(answer["Attributes"])
