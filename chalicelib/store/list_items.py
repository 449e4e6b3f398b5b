"""One recipient of a list (read, replace, remove), and the purge of a cleared or deleted list's items.

An item is of the list's current generation or it does not exist for the API: items a clear left behind
are invisible until the purge removes them. Removing an item and lowering the count are two writes; the
delete is conditional and returns the old item, so a repeated DELETE lowers the count once.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.domain.errors import Conflict, FieldError, NotFound
from chalicelib.domain.recipients import Recipient, recipient_fields
from chalicelib.settings import get_settings
from chalicelib.store import aws, keys, queue
from chalicelib.store.lists import in_generation, item_fields, recipient_of

# Deletes in flight at once while a list is purged.
PURGERS = 16
PURGE_PAGE = 500


def _table() -> str:
    return get_settings().main_table


def _key(account_id: str, list_id: str, recipient_id: str) -> dict[str, Any]:
    return aws.to_item(
        {"pk": keys.list_recipient_pk(account_id, list_id, recipient_id), "sk": keys.recipient_sk(recipient_id)}
    )


def _missing(list_id: str, recipient_id: str) -> NotFound:
    return NotFound(detail=f"recipient {recipient_id[:128]!r} is not in list {list_id}")


def get_item(account_id: str, list_id: str, recipient_id: str, generation: int) -> dict[str, Any]:
    found = aws.dynamodb().get_item(
        TableName=_table(), Key=_key(account_id, list_id, recipient_id), ConsistentRead=True
    )
    item = aws.from_item(found["Item"]) if "Item" in found else None
    if item is None or int(item.get("gen", 0)) != generation:
        raise _missing(list_id, recipient_id)
    return item


def replace_item(account_id: str, list_id: str, current: dict[str, Any], recipient: Recipient) -> dict[str, Any]:
    """Write the recipient's new fields over `current`, keeping when it was added; Conflict when the item
    changed or went since it was read."""
    item = {
        "pk": current["pk"],
        "sk": current["sk"],
        **item_fields(recipient),
        "added_at": current["added_at"],
        "gen": int(current.get("gen", 0)),
        "origin": current.get("origin"),
    }
    answer = aws.write_if(
        aws.dynamodb().put_item,
        TableName=_table(),
        Item=aws.to_item(item),
        ConditionExpression="attribute_exists(pk) AND added_at = :added AND " + in_generation(item["gen"]),
        ExpressionAttributeValues=aws.to_values({":added": current["added_at"], ":gen": item["gen"]}),
    )
    if answer is None:
        raise Conflict(
            detail=f"recipient {recipient.id!r} changed while this request ran; read it and try again",
            errors=[FieldError("recipient_id", "changed meanwhile")],
        )
    before, after = recipient_fields(recipient_of(current)), recipient_fields(recipient)
    changes = {name: -1 for name in before - after} | {name: 1 for name in after - before}
    _count_fields(account_id, list_id, changes, condition=in_generation(item["gen"], "generation"),
                  values={":gen": item["gen"]})  # fmt: skip
    return item


def delete_item(account_id: str, list_id: str, recipient_id: str, generation: int) -> None:
    """Remove the item if it is there, then lower the list's count by one; NotFound when it is not (a
    repeated DELETE), so the count goes down once."""
    answer = aws.write_if(
        aws.dynamodb().delete_item,
        TableName=_table(),
        Key=_key(account_id, list_id, recipient_id),
        ConditionExpression="attribute_exists(pk) AND " + in_generation(generation),
        ExpressionAttributeValues=aws.to_values({":gen": generation}),
        ReturnValues="ALL_OLD",
    )
    if answer is None or not answer.get("Attributes"):
        raise _missing(list_id, recipient_id)
    old = recipient_of(aws.from_item(answer["Attributes"]))
    # Not below what a clear since then set: the count is of the generation the item was in.
    _count_fields(
        account_id,
        list_id,
        {name: -1 for name in recipient_fields(old)},
        extra="recipient_count :minus",
        condition="recipient_count > :zero AND " + in_generation(generation, "generation"),
        values={":minus": -1, ":zero": 0, ":gen": generation},
    )


def _count_fields(
    account_id: str,
    list_id: str,
    changes: dict[str, int],
    *,
    extra: str = "",
    condition: str = "",
    values: dict[str, Any] | None = None,
) -> None:
    """ADD to the list's field counts (and `extra`, e.g. its recipient count), under `condition`; a list
    from before field counts were kept gets `extra` alone."""
    adds = [extra] if extra else []
    names: dict[str, str] = {}
    all_values = dict(values or {})
    for index, (name, delta) in enumerate(sorted(changes.items())):
        if delta:
            adds.append(f"field_counts.#f{index} :f{index}")
            names[f"#f{index}"], all_values[f":f{index}"] = name, delta
    if not adds:
        return
    request: dict[str, Any] = {
        "TableName": _table(),
        "Key": aws.to_item({"pk": keys.list_pk(account_id, list_id), "sk": keys.META}),
        "UpdateExpression": "ADD " + ", ".join(adds),
        "ConditionExpression": "attribute_exists(pk)" + (f" AND {condition}" if condition else ""),
        **({"ExpressionAttributeValues": aws.to_values(all_values)} if all_values else {}),
        **({"ExpressionAttributeNames": names} if names else {}),
    }
    try:
        aws.write_if(aws.dynamodb().update_item, **request)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ValidationException" or not names:
            raise
        if extra:  # no field_counts map: the count alone
            only = {k: v for k, v in all_values.items() if not k.startswith(":f")}
            request.update(UpdateExpression=f"ADD {extra}", ExpressionAttributeValues=aws.to_values(only))
            request.pop("ExpressionAttributeNames")
            aws.write_if(aws.dynamodb().update_item, **request)


def purge_items(
    account_id: str,
    list_id: str,
    *,
    below_generation: int | None,
    after: str | None,
    time_left: Callable[[], float],
) -> tuple[int, str | None]:
    """Delete the list's items older than `below_generation` (all of them when None: the list is gone),
    bucket by bucket from position `after`, until done or `time_left()` runs low (seconds).

    Returns how many were deleted and where to continue (None when done). Deletes after a clear are
    conditional, so an item re-added in the new generation meanwhile stays.
    """
    query: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :r)",
        "ExpressionAttributeValues": {":r": {"S": keys.RECIPIENT_PREFIX}},
        "ProjectionExpression": "pk, sk, gen",
    }
    if below_generation is not None:
        query["FilterExpression"] = "attribute_not_exists(gen) OR gen < :below"
        query["ExpressionAttributeValues"][":below"] = {"N": str(below_generation)}
    buckets = [keys.list_bucket_pk(account_id, list_id, b) for b in range(keys.LIST_BUCKETS)]
    deleted = 0
    position = after
    while True:
        page, position = aws.page_over_buckets(buckets, query, after=position, limit=PURGE_PAGE)
        with ThreadPoolExecutor(max_workers=PURGERS) as pool:
            deleted += sum(pool.map(lambda found: _purge_one(found[1], below_generation), page))
        if position is None or time_left() < 10:
            return deleted, position


def _purge_one(item: dict[str, Any], below_generation: int | None) -> int:
    condition: dict[str, Any] = {}
    if below_generation is not None:
        condition = {
            "ConditionExpression": "attribute_not_exists(gen) OR gen < :below",
            "ExpressionAttributeValues": aws.to_values({":below": below_generation}),
        }
    answer = aws.write_if(
        aws.dynamodb().delete_item,
        TableName=_table(),
        Key=aws.to_item({"pk": item["pk"], "sk": item["sk"]}),
        **condition,
    )
    return 0 if answer is None else 1


def attribute_names(account_id: str, list_id: str, generation: int, cap: int) -> tuple[list[str], bool]:
    """The attribute names the list's items use (the first `cap` found, sorted), and whether there are
    more: one projected Query page after another over every bucket."""
    query: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :r)",
        "ExpressionAttributeValues": {":r": {"S": keys.RECIPIENT_PREFIX}, ":gen": {"N": str(generation)}},
        "ExpressionAttributeNames": {"#a": "attributes"},
        "ProjectionExpression": "sk, #a",
        "FilterExpression": in_generation(generation),
    }
    names: set[str] = set()
    more = False
    position: str | None = None
    buckets = [keys.list_bucket_pk(account_id, list_id, b) for b in range(keys.LIST_BUCKETS)]
    while True:
        page, position = aws.page_over_buckets(buckets, query, after=position, limit=1000)
        for _, item in page:
            for name in item.get("attributes") or {}:
                if name in names:
                    continue
                if len(names) < cap:
                    names.add(name)
                else:
                    more = True
        if position is None:
            return sorted(names), more


def send_purge_job(
    account_id: str, list_id: str, below_generation: int | None, after: str | None = None, delay: int = 0
) -> None:
    """Queue the removal of a list's items: those older than `below_generation`, or all (None)."""
    body = {"account": account_id, "list": list_id, "below": below_generation, "after": after}
    queue.send_messages(get_settings().list_purge_queue_url, [(queue.encode(body), delay)])
