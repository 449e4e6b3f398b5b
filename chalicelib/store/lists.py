"""Recipient lists: one item for the list, one per recipient keyed by its id, spread over
keys.LIST_BUCKETS partition keys."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.domain.errors import NotFound
from chalicelib.domain.recipients import Recipient, recipient_fields
from chalicelib.settings import get_settings
from chalicelib.store import aws, keys

# Conditional puts in flight at once while a batch of recipients is written.
WRITERS = 32


def create_list(account_id: str, name: str) -> dict[str, Any]:
    """The list's META, and beside it an index item under the account (GET /v1/lists pages those)."""
    list_id = keys.new_id("lst")
    created_at = time.time()
    index_sk = keys.list_index_sk(int(created_at * 1000), list_id)
    item = {
        "pk": keys.list_pk(account_id, list_id),
        "sk": keys.META,
        "id": list_id,
        "name": name,
        "recipient_count": 0,
        "counted_runs": {},  # ingest runs' last counted batch (put_recipients_in_batches)
        # How many recipients have each attribute and destination type (`attributes.<name>`,
        # `destinations.<type>`): a campaign's template is checked against them before it starts.
        "field_counts": {},
        "created_at": created_at,
        "index_sk": index_sk,
    }
    table = get_settings().main_table
    # The index item first: one without its META (a crash in between) is skipped when listing.
    index = {"pk": keys.lists_index_pk(account_id), "sk": index_sk, "id": list_id}
    aws.dynamodb().put_item(TableName=table, Item=aws.to_item(index))
    aws.dynamodb().put_item(TableName=table, Item=aws.to_item(item))
    return item


def generation_of(meta: dict[str, Any]) -> int:
    """The list's generation: POST .../clear moves it on; items of an older one are no longer listed."""
    return int(meta.get("generation", 0))


def in_generation(generation: int, attribute: str = "gen") -> str:
    """A condition (on `:gen`) that an item, or with attribute="generation" a list, is of `generation`;
    items written before generations existed have no `gen` and are of generation 0."""
    if generation == 0:
        return f"(attribute_not_exists({attribute}) OR {attribute} = :gen)"
    return f"{attribute} = :gen"


def get_list(account_id: str, list_id: str) -> dict[str, Any]:
    found = aws.dynamodb().get_item(
        TableName=get_settings().main_table,
        Key=aws.to_item({"pk": keys.list_pk(account_id, list_id), "sk": keys.META}),
        ConsistentRead=True,
    )
    if "Item" not in found:
        raise NotFound(detail=f"list {list_id} does not exist")
    return aws.from_item(found["Item"])


@dataclass
class Added:
    """What a write of recipients to a list did: the list's count after it, the ids already listed (by
    another writer), how many it counted and when it wrote them (`added_at`, epoch ms), and the list's META
    as that count left it (None when nothing was counted here): its `campaign_ids` are told of the new ones."""

    count: int
    listed: set[str]
    counted: int
    added_at: int
    meta: dict[str, Any] | None


def put_recipients(
    account_id: str,
    list_id: str,
    rows: list[Recipient],
    *,
    origin: str | None = None,
    generation: int | None = None,
) -> Added:
    """Write recipients, each only if absent, and add the new ones to the list's count.

    The conditional put is also the duplicate check: two uploads racing with the same number count it
    once. Returns the list's new count, the ids already listed and what was counted (`Added`). The count
    grows by what was written even when a later write fails, so a retried request, which finds those rows
    listed, leaves it right.

    `origin` (an upload's batch, e.g. "upl_x:etag:offset") is stored on each item written; a row already
    listed by the same origin is written again and reported as written, not listed, but not counted
    again: so a batch repeated after a crash classifies every row as its first attempt did.

    `generation` is the list's (read from its META when not given): an item of an older generation (a
    cleared list's, not purged yet) counts as absent and is overwritten.
    """
    added_at = int(time.time() * 1000)
    table = get_settings().main_table
    if generation is None:
        generation = generation_of(get_list(account_id, list_id))
    written = 0
    raced: set[str] = set()
    new_rows: list[Recipient] = []

    def put(row: Recipient) -> bool | None:
        return _put_if_new(table, account_id, list_id, row, added_at=added_at, origin=origin, generation=generation)

    try:
        with ThreadPoolExecutor(max_workers=WRITERS) as pool:
            futures = {pool.submit(put, row): row for row in rows}
            errors = []
            for future, row in futures.items():
                if future.exception() is not None:
                    errors.append(future.exception())
                elif future.result():
                    written += 1
                    new_rows.append(row)
                elif future.result() is False:
                    raced.add(row.id)
            if errors:
                raise errors[0]  # type: ignore[misc]
    finally:
        meta = _add_to_count(keys.list_pk(account_id, list_id), written, generation, fields=_fields(new_rows))
    return _added(meta, raced, written, added_at)


def _added(meta: dict[str, Any], listed: set[str], written: int, added_at: int) -> Added:
    counted = written if meta.get("counted", True) else 0
    return Added(int(meta["recipient_count"]), listed, counted, added_at, meta if counted else None)


def _put_if_new(
    table: str, account_id: str, list_id: str, row: Recipient, *, added_at: int, origin: str | None, generation: int
) -> bool | None:
    """Put one list item only if absent (or of an older generation, or written before by `origin`).
    True: written; False: already listed; None: written again by the same origin."""
    item = {
        "pk": keys.list_recipient_pk(account_id, list_id, row.id),
        "sk": keys.recipient_sk(row.id),
        **item_fields(row),
        "added_at": added_at,
        "origin": origin,
        "gen": generation,
    }
    absent = "attribute_not_exists(pk)" + (" OR attribute_not_exists(gen) OR gen < :gen" if generation else "")
    values: dict[str, Any] = {":gen": generation} if generation else {}
    condition: dict[str, Any] = {"ConditionExpression": absent}
    if origin is not None:
        values[":origin"] = origin
        condition = {"ConditionExpression": f"{absent} OR origin = :origin", "ReturnValues": "ALL_OLD"}
    if values:
        condition["ExpressionAttributeValues"] = aws.to_values(values)
    answer = aws.write_if(aws.dynamodb().put_item, TableName=table, Item=aws.to_item(item), **condition)
    if answer is None:
        return False
    old = answer.get("Attributes")
    return None if old and int(old.get("gen", {}).get("N", 0)) == generation else True


def item_fields(recipient: Recipient) -> dict[str, Any]:
    """A recipient's fields as a list item holds them (its id is the sort key)."""
    fields = recipient.to_dict()
    del fields["id"]
    return fields


def recipient_of(item: dict[str, Any]) -> Recipient:
    """The recipient a list item holds."""
    return Recipient.from_dict({**item, "id": item["sk"].removeprefix(keys.RECIPIENT_PREFIX)})


def _add_to_count(
    pk: str,
    added: int,
    generation: int = 0,
    counted: tuple[str, int] | None = None,
    fields: Counter[str] | None = None,
) -> dict[str, Any]:
    """Add to the count of the list's generation: rows written while the list was cleared or deleted
    are not counted (they are of an old generation, invisible, and purged). With `counted` = (run,
    start), only once per batch of an ingest run: the list keeps each run's last counted start. `fields`
    (what the written rows have: recipient_fields) go to the list's `field_counts` in the same write.
    Returns the list's META after the write, with `counted: False` when the rows were not counted here."""
    table = get_settings().main_table
    key = aws.to_item({"pk": pk, "sk": keys.META})

    def request(with_fields: bool) -> dict[str, Any]:
        condition = "attribute_exists(pk) AND " + in_generation(generation, "generation")
        adds, names, values = ["recipient_count :n"], dict[str, str](), {":n": added, ":gen": generation}
        if with_fields:
            for index, (name, count) in enumerate(sorted((fields or Counter()).items())):
                adds.append(f"field_counts.#f{index} :f{index}")
                names[f"#f{index}"], values[f":f{index}"] = name, count
        update = "ADD " + ", ".join(adds)
        if counted is not None:
            condition += " AND (attribute_not_exists(counted_runs.#run) OR counted_runs.#run < :start)"
            update = "SET counted_runs.#run = :start " + update
            names["#run"], values[":start"] = counted[0], counted[1]
        return {
            "TableName": table,
            "Key": key,
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": aws.to_values(values),
            "ReturnValues": "ALL_NEW",  # UPDATED_NEW leaves the count out when 0 was added
            **({"ExpressionAttributeNames": names} if names else {}),
        }

    updated = _write_count(request, key, ensure_runs=counted is not None, with_fields=bool(fields))
    if updated is None:
        found = aws.dynamodb().get_item(TableName=table, Key=key, ConsistentRead=True)
        if "Item" not in found:
            raise NotFound(detail="the list was deleted")
        return {**aws.from_item(found["Item"]), "counted": False}
    return aws.from_item(updated["Attributes"])


def _write_count(
    request: Callable[[bool], dict[str, Any]], key: dict[str, Any], *, ensure_runs: bool, with_fields: bool
) -> dict[str, Any] | None:
    """The count update. A ValidationException means a map the update writes into is missing: the ingest
    runs' (made, then tried again), or `field_counts` on a list from before field counts were kept (then
    the count alone is written, and that list's field counts stay unknown)."""
    last: ClientError | None = None
    for fields_now in (True, False) if with_fields else (False,):
        for _ in range(2):
            try:
                return aws.write_if(aws.dynamodb().update_item, **request(fields_now))
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ValidationException":
                    raise
                last = exc
                if not ensure_runs or _has(key, "counted_runs"):
                    break
                _ensure_counted_runs(key)  # a list created before the map existed (or cleared of it)
    assert last is not None
    raise last


def _has(key: dict[str, Any], attribute: str) -> bool:
    found = aws.dynamodb().get_item(
        TableName=get_settings().main_table, Key=key, ProjectionExpression=attribute, ConsistentRead=True
    )
    return attribute in found.get("Item", {})


def _fields(rows: list[Recipient]) -> Counter[str]:
    """How many of `rows` have each attribute and destination type."""
    return Counter(name for row in rows for name in recipient_fields(row))


def _ensure_counted_runs(key: dict[str, Any]) -> None:
    """The map of ingest runs' counted batches exists on the list (SET of a path needs its parent)."""
    aws.write_if(
        aws.dynamodb().update_item,
        TableName=get_settings().main_table,
        Key=key,
        UpdateExpression="SET counted_runs = :empty",
        ConditionExpression="attribute_exists(pk) AND attribute_not_exists(counted_runs)",
        ExpressionAttributeValues={":empty": {"M": {}}},
    )


def recipients_page(
    account_id: str,
    list_id: str,
    *,
    after: str | None,
    limit: int,
    added_before_ms: int | None = None,
    added_from_ms: int | None = None,
    generation: int | None = None,
) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
    """Recipients of the list's current generation (read from its META when not given), bucket by bucket
    after position `after`: (position, item) pairs and where to continue, or None when the list is done."""
    if generation is None:
        try:
            generation = generation_of(get_list(account_id, list_id))
        except NotFound:
            return [], None
    query: dict[str, Any] = {
        "TableName": get_settings().main_table,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :r)",
        "ExpressionAttributeValues": {":r": {"S": keys.RECIPIENT_PREFIX}},
    }
    filters = []
    if generation:
        filters.append(in_generation(generation))
        query["ExpressionAttributeValues"][":gen"] = {"N": str(generation)}
    if added_before_ms is not None:
        # A campaign's audience is the list as it stood when the campaign started.
        filters.append("added_at <= :started")
        query["ExpressionAttributeValues"][":started"] = {"N": str(added_before_ms)}
    if added_from_ms is not None:  # a later pass of a campaign that takes recipients added after its start
        filters.append("added_at >= :from")
        query["ExpressionAttributeValues"][":from"] = {"N": str(added_from_ms)}
    if filters:
        query["FilterExpression"] = " AND ".join(filters)
    buckets = [keys.list_bucket_pk(account_id, list_id, b) for b in range(keys.LIST_BUCKETS)]
    return aws.page_over_buckets(buckets, query, after=after, limit=limit)


# BatchGetItem and BatchWriteItem calls in flight at once while a batch of an upload is ingested.
BATCH_CALLS = 8


def listed_ids(account_id: str, list_ids: list[str], candidates: set[str]) -> set[str]:
    """Which of `candidates` are item ids of any of the lists, in the list's current generation (a
    cleared list's old items do not count): the lists' META and the items in one BatchGetItem per 100
    keys (a chunk's check against exclusion lists is one call, not one read per recipient)."""
    wanted = [{"pk": keys.list_pk(account_id, list_id), "sk": keys.META} for list_id in list_ids] + [
        {"pk": keys.list_recipient_pk(account_id, list_id, rid), "sk": keys.recipient_sk(rid)}
        for list_id in list_ids
        for rid in sorted(candidates)
    ]
    items = aws.batch_get(get_settings().main_table, wanted, projection="pk, sk, gen, generation")
    generations = {i["pk"]: int(i.get("generation", 0)) for i in items if i["sk"] == keys.META}
    return {
        i["sk"].removeprefix(keys.RECIPIENT_PREFIX)
        for i in items
        if i["sk"] != keys.META and int(i.get("gen", 0)) == generations.get(i["pk"].rpartition("#")[0], -1)
    }


def put_recipients_in_batches(
    account_id: str,
    list_id: str,
    rows: list[Recipient],
    *,
    run: str,
    start: int,
    generation: int | None = None,
    exclusive: bool = False,
) -> Added:
    """`put_recipients` for file ingest: the same classification from one consistent BatchGetItem per
    100 rows and one BatchWriteItem per 25, instead of a conditional PutItem per row (about 8 times the
    throughput on the same DynamoDB, the same write units). Returns `Added`, whose `listed` are the ids listed
    by others (duplicates).

    `run` (an upload's ingest of one object version) and `start` (the batch's position in the file)
    make the batch's `origin`, stored on each item. A batch repeated after a crash finds the rows its
    first attempt wrote by their origin and takes them as its own, and the list's count is added once
    per (run, start): the ADD is conditioned on the run's last counted start on the list, so a crash
    between the writes and the ADD, or after the ADD, counts every row once. Batches of one run come
    in order (one worker reads a file from its checkpoint).

    The check and the write are two calls, not one: a row written by another writer between them (the
    JSON API, or another file ingested into the same list in the same milliseconds) is overwritten with
    this row's data and counted twice. `exclusive` closes that gap where it is systematic (segments of one
    file ingested in parallel, which meet the same ids at the same time when a list is repeated in it):
    each row is then put with `_put_if_new`'s condition, one PutItem per row, the same write units.
    """
    origin = f"{run}:{start}"
    added_at = int(time.time() * 1000)
    table = get_settings().main_table
    if generation is None:
        generation = generation_of(get_list(account_id, list_id))

    def key(rid: str) -> dict[str, str]:
        return {"pk": keys.list_recipient_pk(account_id, list_id, rid), "sk": keys.recipient_sk(rid)}

    def look_up(part: list[Recipient]) -> list[dict[str, Any]]:
        return aws.batch_get(table, [key(r.id) for r in part], projection="sk, origin, gen")

    def write(part: list[Recipient]) -> None:
        aws.batch_put(
            table,
            [{**key(r.id), **item_fields(r), "added_at": added_at, "origin": origin, "gen": generation} for r in part],
        )

    if exclusive:
        with ThreadPoolExecutor(max_workers=WRITERS) as pool:
            new = list(
                pool.map(
                    lambda r: _put_if_new(
                        table, account_id, list_id, r, added_at=added_at, origin=origin, generation=generation
                    ),
                    rows,
                )
            )
        taken = {row.id for row, fresh in zip(rows, new, strict=True) if fresh is False}
        kept = [row for row in rows if row.id not in taken]
        meta = _add_to_count(keys.list_pk(account_id, list_id), len(kept), generation, (run, start), _fields(kept))
        return _added(meta, taken, len(rows) - len(taken), added_at)

    with ThreadPoolExecutor(max_workers=BATCH_CALLS) as pool:
        current = {
            item["sk"].removeprefix(keys.RECIPIENT_PREFIX): item
            for found in pool.map(look_up, _parts(rows, aws.BATCH_GET_KEYS))
            for item in found
        }
        listed: set[str] = set()
        to_write: list[Recipient] = []
        for row in rows:
            old = current.get(row.id)
            if old is not None and int(old.get("gen", 0)) >= generation and origin != old.get("origin"):
                listed.add(row.id)
            else:  # absent, or written by this very batch before a crash (then counted only if it was not)
                to_write.append(row)
        list(pool.map(write, _parts(to_write, aws.BATCH_WRITE_ITEMS)))
    meta = _add_to_count(
        keys.list_pk(account_id, list_id), len(to_write), generation, counted=(run, start), fields=_fields(to_write)
    )
    return _added(meta, listed, len(to_write), added_at)


def _parts(rows: list[Recipient], size: int) -> list[list[Recipient]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]
