"""Counts from the deliveries stream added to an item once per change: the campaign's counters (decision 3)
and its minutes of the timeline (decision 41).

A bucket's deliveries share a partition key and take a few hundred writes a second at most, so DynamoDB
keeps them on one partition and their changes come in order on one shard; the item keeps, per bucket, the
sequence number of the last change it counted (its guard). Buckets are guarded apart, so batches of
different buckets (possibly on different shards) add in any order; deltas commute.

The first write adds a batch's changes on the condition that no bucket counted any of them (its guard is
below the batch's first number for it). A replay fails that condition: Lambda may deliver a batch again
after a failure, and not cut the same way (a runner killed after the write but before its checkpoint read
the same changes and more into its next batch, and a guard on the batch's last number alone counted the
first ones twice: `in_flight` -26). The guards are then read, and only the changes after them added, on
the condition that the guards are still what was read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.settings import get_settings
from chalicelib.store import aws

# A stream batch's changes of one bucket's deliveries: (sequence number, counter deltas), in stream order.
BucketChanges = list[tuple[str, dict[str, int]]]
# Writes tried after a replay before giving up (another writer moving the guards meanwhile).
TRIES = 5
WIDTH = 40  # sequence numbers are compared as strings of this width


def add_once(
    key: dict[str, Any],
    batches: dict[int, BucketChanges],
    guard: Callable[[int], list[str]],
    *,
    also_add: dict[str, int] | None = None,
    also_set: dict[str, Any] | None = None,
    must_exist: bool = False,
) -> dict[str, Any] | None:
    """ADD the deltas of `batches` (bucket -> its changes) to the item at `key` (plain) of the main table,
    each change once. `guard(bucket)` is the path of the bucket's guard attribute, as its parts (a map
    entry `["stream_seq", "3"]`, or `["seq_3"]`). `also_add` and `also_set` go with every write. Returns the
    item as written, or None when nothing was left to add (or the item is missing and `must_exist`)."""
    ordered = {
        b: sorted(((seq.zfill(WIDTH), deltas) for seq, deltas in changes), key=lambda c: c[0])
        for b, changes in batches.items()
        if changes
    }
    if not ordered:
        return None
    written = _write(key, ordered, None, guard, also_add or {}, also_set or {}, must_exist)
    if written is not None:
        return written
    for _ in range(TRIES):
        counted = _counted(key, list(ordered), guard)
        if counted is None:
            if must_exist:
                return None
            counted = dict.fromkeys(ordered, "")
        left = {b: [c for c in changes if c[0] > counted[b]] for b, changes in ordered.items()}
        left = {b: changes for b, changes in left.items() if changes}
        if not left:
            return None
        written = _write(key, left, counted, guard, also_add or {}, also_set or {}, must_exist)
        if written is not None:
            return written
    raise RuntimeError(f"{key}: the stream guards kept changing under {TRIES} tries")


def _path(parts: list[str], tag: str, names: dict[str, str]) -> str:
    for j, part in enumerate(parts):
        names[f"#{tag}_{j}"] = part
    return ".".join(f"#{tag}_{j}" for j in range(len(parts)))


def _write(
    key: dict[str, Any],
    left: dict[int, BucketChanges],
    counted: dict[int, str] | None,
    guard: Callable[[int], list[str]],
    also_add: dict[str, int],
    also_set: dict[str, Any],
    must_exist: bool,
) -> dict[str, Any] | None:
    """One write of what is left, each bucket's guard asserting what it counted before: below the first change
    left (`counted` None: the first try), else exactly the number read ("": none)."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    sets, conditions = [], ["attribute_exists(pk)"] if must_exist else []
    totals = dict(also_add)
    for i, (bucket, changes) in enumerate(sorted(left.items())):
        path = _path(guard(bucket), f"g{i}", names)
        values[f":s{i}"] = changes[-1][0]
        sets.append(f"{path} = :s{i}")
        if counted is None:
            conditions.append(f"(attribute_not_exists({path}) OR {path} < :f{i})")
            values[f":f{i}"] = changes[0][0]
        elif counted[bucket]:
            conditions.append(f"{path} = :f{i}")
            values[f":f{i}"] = counted[bucket]
        else:
            conditions.append(f"attribute_not_exists({path})")
        for _, deltas in changes:
            for name, delta in deltas.items():
                totals[name] = totals.get(name, 0) + delta
    for i, (name, value) in enumerate(sorted(also_set.items())):
        names[f"#e{i}"] = name
        values[f":e{i}"] = value
        sets.append(f"#e{i} = :e{i}")
    adds = []
    for i, (name, delta) in enumerate(sorted((n, d) for n, d in totals.items() if d)):
        names[f"#c{i}"] = name
        values[f":c{i}"] = delta
        adds.append(f"#c{i} :c{i}")
    expression = "SET " + ", ".join(sets) + (" ADD " + ", ".join(adds) if adds else "")
    answer = aws.write_if(
        aws.dynamodb().update_item,
        TableName=get_settings().main_table,
        Key=aws.to_item(key),
        UpdateExpression=expression,
        ConditionExpression=" AND ".join(conditions),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=aws.to_values(values),
        ReturnValues="ALL_NEW",
    )
    return None if answer is None else aws.from_item(answer["Attributes"])


def _counted(key: dict[str, Any], buckets: list[int], guard: Callable[[int], list[str]]) -> dict[int, str] | None:
    """The guards of `buckets` as stored ("" where a bucket has none); None when the item does not exist."""
    names: dict[str, str] = {}
    paths = [_path(guard(bucket), f"g{i}", names) for i, bucket in enumerate(buckets)]
    found = aws.dynamodb().get_item(
        TableName=get_settings().main_table,
        Key=aws.to_item(key),
        ConsistentRead=True,
        ProjectionExpression=", ".join(["pk", *paths]),
        ExpressionAttributeNames=names,
    )
    if "Item" not in found:
        return None
    item = aws.from_item(found["Item"])
    counted: dict[int, str] = {}
    for bucket in buckets:
        value: Any = item
        for part in guard(bucket):
            value = value.get(part, {}) if isinstance(value, dict) else {}
        counted[bucket] = value if isinstance(value, str) else ""
    return counted
