"""moto's server as the local AWS, made faithful under concurrency and fast for our access patterns.

The same WSGI app `python -m moto.server` runs, with the changes below. `install_patches()` applies
them to moto's classes in this process only: the server started here (`main`) installs them, the
unit tests' `mock_aws` runs moto unchanged. `uninstall_patches()` (or leaving `patched_moto()`)
restores moto as it was.

1. DynamoDB is serialized. Every public method of moto's DynamoDB and DynamoDB Streams backends runs
   under one lock, and GetItem, PutItem and UpdateItem hand the response layer a copy of the item.
   moto has no locks of its own, and under the event runner's concurrent requests:
   - a conditional write checks, then writes: two writers could both pass one condition;
   - stream records are numbered by the length of a list: two records could get one sequence
     number, so a stream reader re-read a record;
   - a Query on an index keeps the items that carry the index's keys, then sorts them by those keys:
     an UpdateItem removing the key in between (a sparse index such as DeliveriesTable's `due`)
     made the sort raise `KeyError: 'due_at'`, a 500 (27 in one 10,000-recipient run);
   - the response layer serializes the live item after the backend returned, while another request
     may be updating it (`dictionary changed size during iteration`), and GetItem of a missing
     partition adds an empty one to the dict another request may be iterating.
   moto runs under the GIL, so the lock costs little: parsing and serializing still overlap.

2. Query reads what it returns, not the table. moto's `Table.query` walks every item of the table
   (for a base-table Query as for an index), sorts the matches, skips to ExclusiveStartKey and stops
   at Limit: each page costs O(table), and paging through a partition is quadratic. Here each table
   keeps, per key schema it is queried by (the table's own and each index's), its items grouped by
   hash key value, each group sorted the way moto sorts a Query's matches; an index group holds only
   the items carrying all of the index's keys. The groups are built on the first Query and kept up
   to date on every write (`Table.put_item` and `Table.delete_item`, through which PutItem,
   DeleteItem, BatchWriteItem, TransactWriteItems and PartiQL write, and `update_item`, which
   changes an item in place). A Query then bisects to ExclusiveStartKey and to the range of its sort
   key condition and reads only the items it returns, plus one to decide LastEvaluatedKey.
   The answer is moto's own: the same items in the same order, LastEvaluatedKey, Count and
   ScannedCount, FilterExpression applied after Limit (the page loop below is moto's, only the walk
   over candidates changed). What the fast path does not cover runs moto's code: the legacy
   QueryFilter, multi-attribute index keys, malformed ExclusiveStartKeys and key values whose type
   differs from the table's attribute definitions. `STATS` counts what the fast path read.

3. GetRecords and DynamoDB's item operations answer with `json.dumps` of moto's result. moto 5.2
   serializes them through its generic model-driven serializer, which walks every attribute value of
   every item against the API model: 110 ms of the server's CPU for a page of 1,000 stream records of
   small deliveries, over a quarter of all its CPU in a campaign, and 0.5 ms per list item a Query
   returns, more than reading it (measured per action with `time.thread_time`). The results are
   already in the wire format but for their timestamps, converted as moto's serializer converts
   them; one holding binary attributes (which the serializer base64-encodes) still goes through
   moto's code, as does every error and every other operation.

4. The backend serving each host is remembered (moto otherwise scans its module list and a few
   hundred URL patterns on every request, a fifth of its time under load), and so are the action names of
   each response class (listed with `inspect.getmembers` on every request: 3% of its CPU in a campaign).

5. werkzeug's per-request access log is off.

6. UpdateItem reads the old item only when its answer needs it. moto's handler deep-copies the item before
   every update (our GetItem copies it once more) and turns it into JSON, to answer ReturnValues ALL_OLD or
   UPDATED_*; for NONE and ALL_NEW the copies are thrown away. They made the outcome write, the one every
   recipient makes, cost 3.3 ms of the server's CPU against a PutItem's 1.4 (decision 50).

7. SQS costs the same at any queue depth. moto's `Queue.messages` (the visible, undelayed messages, read
   on every ReceiveMessage and by its long-poll wait) reads the clock twice per message in the queue through
   `unix_time_millis` (a datetime subtraction), as do the counts of messages delayed and not visible; every
   SendMessage computes all the queue's attributes (those three counts among them) to read one; for every
   message it hands out, ReceiveMessage checks the retention period through `get_queue_attributes`, which
   computes all the attributes three times per name asked; DeleteMessage walks the queue twice, building each
   message's list of receipt handles. At 600 messages waiting (a 100,000-recipient campaign's backlog at
   1,000/s) a ReceiveMessage of 10 and its DeleteMessageBatch cost 0.48 s of the server's CPU against 0.06 s
   at 50: a campaign's time per recipient grew with its size. Here the clock is read once per walk (still one
   walk per count, but of integer comparisons), the retention period is read from the queue,
   `get_queue_attributes` computes the attributes once, and a delete walks the queue once, comparing handles.
   The answers are moto's (a test drives both versions through the same calls).

Parts 1 to 3 are written against moto 5.2's `moto.dynamodb.models`; both could move into moto
itself (a lock in the backend, and the sorted groups as a `Table` attribute maintained by its
`put_item`/`delete_item` and the backend's `update_item`).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import copy
import datetime
import functools
import inspect
import json
import logging
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from types import FrameType
from typing import Any

from moto.core import responses as moto_responses
from moto.core.responses import ActionResult
from moto.core.serialize import TimestampSerializer
from moto.core.utils import unix_time, unix_time_millis
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, GlobalSecondaryIndex, Table
from moto.dynamodb.responses import DynamoHandler, DynamoResult
from moto.dynamodbstreams.models import DynamoDBStreamsBackend
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.sqs.exceptions import ReceiptHandleIsInvalid
from moto.sqs.models import Message, Queue, SQSBackend
from werkzeug.serving import ThreadedWSGIServer

from infra.local import moto_ses

logger = logging.getLogger(__name__)

# moto refuses items above this size (`LimitedSizeDict`): an item this small cannot end a page by size.
MAX_ITEM_BYTES = 405_000

_lock = threading.RLock()
_originals: dict[tuple[type, str], Any] = {}
_MISSING = object()


# -- patching ------------------------------------------------------------------------------------


def _patch(cls: type, name: str, replacement: Any) -> None:
    if (cls, name) not in _originals:
        _originals[(cls, name)] = cls.__dict__.get(name, _MISSING)
    setattr(cls, name, replacement)


def _original(cls: type, name: str) -> Any:
    saved = _originals.get((cls, name), _MISSING)
    return getattr(cls, name) if saved is _MISSING else saved


def install_patches() -> None:
    """Serialize moto's DynamoDB and answer Queries from sorted groups (idempotent)."""
    with _lock:
        if _originals:
            return
        _serialize_dynamodb()
        _index_queries()
        _fast_stream_records()
        _plain_item_results()
        _no_old_item_unless_asked()
        _sqs_at_any_depth()


def uninstall_patches() -> None:
    with _lock:
        for (cls, name), original in _originals.items():
            if original is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, original)
        _originals.clear()
        _groups.clear()


@contextlib.contextmanager
def patched_moto() -> Iterator[None]:
    """The patches for the duration of a block (they apply to every thread of the process)."""
    installed = bool(_originals)
    install_patches()
    try:
        yield
    finally:
        if not installed:
            uninstall_patches()


# -- 1. serialization ----------------------------------------------------------------------------


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return method(*args, **kwargs)

    return call


def _locked_copy(method: Callable[..., Any]) -> Callable[..., Any]:
    """Locked, and the item returned is a copy: the response layer serializes it after the lock."""

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return copy.deepcopy(method(*args, **kwargs))

    return call


def _public_methods(cls: type) -> list[str]:
    return [
        name
        for name, value in vars(cls).items()
        if not name.startswith("_") and inspect.isfunction(value) and not inspect.isgeneratorfunction(value)
    ]


def _serialize_dynamodb() -> None:
    for name in _public_methods(DynamoDBBackend):
        wrap = _get_item_copy if name == "get_item" else _locked_copy if name == "put_item" else _locked
        _patch(DynamoDBBackend, name, wrap(getattr(DynamoDBBackend, name)))
    for name in _public_methods(DynamoDBStreamsBackend):
        _patch(DynamoDBStreamsBackend, name, _locked(getattr(DynamoDBStreamsBackend, name)))


_no_old_item = threading.local()


def _get_item_copy(method: Callable[..., Any]) -> Callable[..., Any]:
    """GetItem, locked and copied; None for the read of the old item an UpdateItem does not need (part 6)."""
    locked = _locked_copy(method)

    @functools.wraps(method)
    def get_item(*args: Any, **kwargs: Any) -> Any:
        if getattr(_no_old_item, "skip", False):
            _no_old_item.skip = False
            return None
        return locked(*args, **kwargs)

    return get_item


def _update_item_answer(original: Callable[..., Any]) -> Callable[..., Any]:
    """The UpdateItem handler; with ReturnValues NONE or ALL_NEW its read of the old item (the first and
    only GetItem it makes: the backend's update reads the table itself) answers None."""

    @functools.wraps(original)
    def update_item(self: DynamoHandler) -> Any:
        _no_old_item.skip = self.body.get("ReturnValues", "NONE") in ("NONE", "ALL_NEW")
        try:
            return original(self)
        finally:
            _no_old_item.skip = False

    return update_item


def _no_old_item_unless_asked() -> None:
    _patch(DynamoHandler, "update_item", _update_item_answer(_original(DynamoHandler, "update_item")))


# -- 7. SQS at any queue depth -----------------------------------------------------------------


def _visible_messages(self: Queue) -> list[Message]:
    """moto's `Queue.messages`: visible (`now > visible_at`) and not delayed (`now < delayed_until`)."""
    now = unix_time_millis()
    return [message for message in self._messages if now > message.visible_at and not now < message.delayed_until]


def _delayed_count(self: Queue) -> int:
    now = unix_time_millis()
    return sum(1 for message in self._messages if now < message.delayed_until)


def _not_visible_count(self: Queue) -> int:
    now = unix_time_millis()
    return sum(1 for message in self._messages if not now > message.visible_at)


def _within_retention(self: SQSBackend, queue_name: str, message: Message) -> bool:
    """moto's check, reading the retention period (an int, set by `Queue._set_attributes`) off the queue."""
    retention_period: int = getattr(self.get_queue(queue_name), "message_retention_period")  # noqa: B009
    return retention_period + float(message.sent_timestamp or 0) / 1000 > unix_time()


def _get_queue_attributes(original: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """moto's, computing the queue's attributes once rather than up to three times per name asked."""

    @functools.wraps(original)
    def get_queue_attributes(self: SQSBackend, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
        queue = self.get_queue(queue_name)
        if not attribute_names or "All" in attribute_names:
            return original(self, queue_name, attribute_names)
        valid = ["All", *queue.BASE_ATTRIBUTES, *queue.FIFO_ATTRIBUTES, *queue.KMS_ATTRIBUTES]
        if any(name not in valid for name in attribute_names):
            return original(self, queue_name, attribute_names)  # its error
        computed = queue.attributes
        return {name: computed[name] for name in attribute_names if computed.get(name) is not None}

    return get_queue_attributes


def _delete_message(self: Queue, receipt_handle: str) -> None:
    """moto's `Queue.delete_message` in one walk: a message had the handle if it is its current or an old one."""
    if receipt_handle in self.deleted_messages:
        return  # already deleted: deleting it again succeeds
    kept: list[Message] = []
    found = False
    for message in self._messages:
        if message.receipt_handle == receipt_handle or receipt_handle in message._old_receipt_handles:
            found = True
            self.pending_messages.discard(message)
            self.deleted_messages.update(message.all_receipt_handles)  # type: ignore[arg-type]  # as moto does
            continue
        kept.append(message)
    if not found:
        raise ReceiptHandleIsInvalid()
    self._messages = kept


def _sqs_at_any_depth() -> None:
    _patch(Queue, "messages", property(_visible_messages))
    _patch(Queue, "approximate_number_of_messages_delayed", property(_delayed_count))
    _patch(Queue, "approximate_number_of_messages_not_visible", property(_not_visible_count))
    _patch(SQSBackend, "is_message_valid_based_on_retention_period", _within_retention)
    _patch(SQSBackend, "get_queue_attributes", _get_queue_attributes(SQSBackend.get_queue_attributes))
    _patch(Queue, "delete_message", _delete_message)


# -- 2. Query from sorted groups -----------------------------------------------------------------


@dataclass
class QueryStats:
    """What the Queries of this process cost (for tests and measurements; `reset()` zeroes it)."""

    fast: int = 0  # answered from the sorted groups
    fallback: int = 0  # answered by moto's own code
    visited: int = 0  # items the fast path read
    probes: int = 0  # sort keys its binary searches compared
    builds: int = 0  # groups built from a whole table
    stale: int = 0  # groups found out of date with the table, and dropped
    plain: int = 0  # DynamoDB answers written as plain JSON (part 3)

    def reset(self) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, 0)


STATS = QueryStats()


class _NotCovered(Exception):
    """moto's own Query answers this request."""


class _Stale(Exception):
    """The groups disagree with the table: drop them (they are rebuilt on the next Query)."""


# (sort key as plain values, item hash key, item range key): how a group lists an item.
_Entry = tuple[tuple[Any, ...], DynamoType, DynamoType | None]
_sort_key = itemgetter(0)


class _Groups:
    """The items of one table that carry `attrs`, grouped by the first, each group sorted by all.

    `attrs` is moto's sort order for a Query (`Table._generate_attr_to_sort_by`): the hash key and
    range key of the index, then those of the table. Values are kept as moto compares them
    (`DynamoType.cast_value`), all of one type per attribute (the table's attribute definitions).
    """

    def __init__(self, table: Table, attrs: list[str]) -> None:
        self.attrs = attrs
        self.types = _attribute_types(table)
        if any(attr not in self.types for attr in attrs):
            raise _NotCovered(f"a key attribute of {attrs} has no attribute definition")
        self.groups: dict[Any, list[_Entry]] = {}
        self.where: dict[tuple[DynamoType, DynamoType | None], _Entry] = {}
        entries = [entry for item in _all_items(table) if (entry := self._entry(item)) is not None]
        entries.sort(key=_sort_key)
        for entry in entries:
            self.groups.setdefault(entry[0][0], []).append(entry)
            self.where[(entry[1], entry[2])] = entry
        STATS.builds += 1

    def _entry(self, item: Item) -> _Entry | None:
        values = []
        for attr in self.attrs:
            value = item.attrs.get(attr)
            if value is None:
                return None  # not in the index (a sparse index)
            if value.type != self.types[attr]:
                raise _Stale(f"{attr} is {value.type}, defined as {self.types[attr]}")
            values.append(value.cast_value)
        return tuple(values), item.hash_key, item.range_key

    def reindex(self, table: Table, hash_key: DynamoType, range_key: DynamoType | None) -> None:
        old = self.where.pop((hash_key, range_key), None)
        if old is not None:
            group = self.groups.get(old[0][0], [])
            at = bisect.bisect_left(group, old[0], key=_sort_key)
            if at >= len(group) or group[at] is not old:
                raise _Stale("an entry is not where it was put")
            del group[at]
            if not group:
                del self.groups[old[0][0]]
        item = _current_item(table, hash_key, range_key)
        entry = self._entry(item) if item is not None else None
        if entry is not None:
            bisect.insort(self.groups.setdefault(entry[0][0], []), entry, key=_sort_key)
            self.where[(entry[1], entry[2])] = entry

    def item(self, table: Table, entry: _Entry) -> Item:
        item = _current_item(table, entry[1], entry[2])
        if item is None:
            raise _Stale("an entry's item is gone")
        for attr, value in zip(self.attrs, entry[0], strict=True):
            current = item.attrs.get(attr)
            if current is None or current.cast_value != value:
                raise _Stale(f"an entry's {attr} changed")
        return item


# Table -> {(index name or None, sort attributes): groups}; dropped with the table.
_groups: weakref.WeakKeyDictionary[Table, dict[tuple[str | None, tuple[str, ...]], _Groups]] = (
    weakref.WeakKeyDictionary()
)


def _attribute_types(table: Table) -> dict[str, str]:
    return {a["AttributeName"]: a["AttributeType"] for a in table.attr}


def _all_items(table: Table) -> Iterator[Item]:
    stored: dict[Any, Any] = table.items  # hash -> {range -> item}, or hash -> item without a range key
    for value in list(stored.values()):
        if table.range_key_attr:
            yield from list(value.values())
        else:
            yield value


def _current_item(table: Table, hash_key: DynamoType, range_key: DynamoType | None) -> Item | None:
    """The stored item, read without adding a partition (`table.items` is a defaultdict)."""
    items: dict[Any, Any] = table.items
    stored = items.get(hash_key)
    if stored is None or not table.range_key_attr:
        return stored
    return stored.get(range_key)


def _reindex(table: Table, hash_key: DynamoType | None, range_key: DynamoType | None) -> None:
    """After a write of one item: move it in every group of its table. Never fails a write."""
    groups = _groups.get(table)
    if not groups or hash_key is None:
        return
    try:
        for key_groups in groups.values():
            key_groups.reindex(table, hash_key, range_key)
    except Exception as exc:
        logger.debug("dropping the query groups of %s: %r", table.name, exc)
        STATS.stale += 1
        _groups.pop(table, None)


def _groups_for(table: Table, index_name: str | None, attrs: list[str]) -> _Groups:
    per_table = _groups.setdefault(table, {})
    key = (index_name, tuple(attrs))
    if key not in per_table:
        per_table[key] = _Groups(table, attrs)
    return per_table[key]


def _put_item(original: Callable[..., Item]) -> Callable[..., Item]:
    @functools.wraps(original)
    def put_item(self: Table, *args: Any, **kwargs: Any) -> Item:
        with _lock:
            item = original(self, *args, **kwargs)
            _reindex(self, item.hash_key, item.range_key)
            return item

    return put_item


def _delete_item(original: Callable[..., Item | None]) -> Callable[..., Item | None]:
    @functools.wraps(original)
    def delete_item(self: Table, hash_key: DynamoType, range_key: DynamoType | None = None) -> Item | None:
        with _lock:
            try:
                return original(self, hash_key, range_key)
            finally:
                _reindex(self, hash_key, range_key)

    return delete_item


def _update_item(original: Callable[..., Item]) -> Callable[..., Item]:
    """The backend's update_item changes the stored item in place: move it in its groups after."""

    @functools.wraps(original)
    def update_item(self: DynamoDBBackend, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Item:
        with _lock:
            try:
                return copy.deepcopy(original(self, table_name, key, *args, **kwargs))
            finally:
                try:
                    table: Table | None = self.get_table(table_name)
                except Exception:
                    table = None  # the update failed for it
                if table is not None and table in _groups:
                    try:
                        hash_key = DynamoType(key[table.hash_key_attr])
                        range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
                    except Exception:
                        _groups.pop(table, None)
                    else:
                        _reindex(table, hash_key, range_key)

    return update_item


_query_from_groups = True


@contextlib.contextmanager
def moto_query() -> Iterator[None]:
    """Answer Queries with moto's own code for the duration of a block (to compare the two)."""
    global _query_from_groups
    with _lock:
        saved, _query_from_groups = _query_from_groups, False
    try:
        yield
    finally:
        with _lock:
            _query_from_groups = saved


def _query(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def query(
        self: Table,
        hash_key: DynamoType | None,
        range_comparison: str | None,
        range_objs: list[DynamoType],
        limit: int | None,
        exclusive_start_key: dict[str, Any] | None,
        scan_index_forward: bool,
        projection_expressions: list[list[str]] | None,
        index_name: str | None = None,
        consistent_read: bool = False,
        filter_expression: Any = None,
        hash_key_conditions: list[tuple[str, DynamoType]] | None = None,
        range_key_conditions: list[tuple[str, str, list[DynamoType]]] | None = None,
        **filter_kwargs: Any,
    ) -> tuple[list[Item], int, dict[str, Any] | None]:
        with _lock:
            if _query_from_groups and not filter_kwargs:
                try:
                    results, last_evaluated_key = _query_page(
                        self,
                        hash_key,
                        range_comparison,
                        range_objs,
                        limit,
                        exclusive_start_key,
                        scan_index_forward,
                        index_name,
                        consistent_read,
                        hash_key_conditions or [],
                        range_key_conditions or [],
                    )
                except _NotCovered as exc:
                    logger.debug("Query on %s answered by moto: %s", self.name, exc)
                except _Stale as exc:
                    logger.warning("query groups of %s out of date (%s); rebuilding them", self.name, exc)
                    STATS.stale += 1
                    _groups.pop(self, None)
                else:
                    STATS.fast += 1
                    return _finish(
                        self, results, last_evaluated_key, index_name, filter_expression, projection_expressions
                    )
            STATS.fallback += 1
            return original(
                self,
                hash_key,
                range_comparison,
                range_objs,
                limit,
                exclusive_start_key,
                scan_index_forward,
                projection_expressions,
                index_name,
                consistent_read,
                filter_expression,
                hash_key_conditions=hash_key_conditions,
                range_key_conditions=range_key_conditions,
                **filter_kwargs,
            )

    return query


def _finish(
    table: Table,
    results: list[Item],
    last_evaluated_key: dict[str, Any] | None,
    index_name: str | None,
    filter_expression: Any,
    projection_expressions: list[list[str]] | None,
) -> tuple[list[Item], int, dict[str, Any] | None]:
    """The end of moto's `Table.query`, unchanged: ScannedCount counts the page before the filter."""
    scanned_count = len(results)
    results = copy.deepcopy(results)
    if index_name:
        index = table.get_index(index_name)
        results = [index.project(r) for r in results]
    if filter_expression is not None:
        results = [item for item in results if filter_expression.expr(item)]
    if projection_expressions:
        results = [r.project(projection_expressions) for r in results]
    return results, scanned_count, last_evaluated_key


def _key_schema(
    table: Table,
    index_name: str | None,
    consistent_read: bool,
    range_comparison: str | None,
) -> tuple[list[str], list[str | None], str | None]:
    """(hash attrs, range attrs, range key attr) as moto's `Table.query` computes them."""
    if not index_name:
        return [table.hash_key_attr], [table.range_key_attr], table.range_key_attr
    index = {i.name: i for i in table.all_indexes()}.get(index_name)
    if index is None:
        raise _NotCovered("no such index")  # moto raises the validation error
    if consistent_read and isinstance(index, GlobalSecondaryIndex):
        raise _NotCovered("consistent read on a global index")  # moto raises the validation error
    hash_keys = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
    range_keys = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"]
    if len(hash_keys) != 1 or len(range_keys) > 1:
        raise _NotCovered("multi-attribute index keys")
    if range_keys:
        return [hash_keys[0], table.hash_key_attr], [range_keys[0], table.range_key_attr], range_keys[0]
    if range_comparison:
        raise _NotCovered("a range condition on an index without a range key")  # moto raises
    if isinstance(index, GlobalSecondaryIndex) and table.range_key_attr:
        ordering = table.range_key_attr
    else:
        ordering = table.hash_key_attr
    return [hash_keys[0], table.hash_key_attr], [ordering, table.range_key_attr], None


def _side(operator: str, bounds: list[Any]) -> Callable[[Any], int]:
    """For a sort key condition: -1 below its range, 0 inside, 1 above (monotone in the key)."""
    if operator == "=" or operator == "EQ":
        (v,) = bounds
        return lambda x: -1 if x < v else (1 if x > v else 0)
    if operator in ("<", "LT"):
        (v,) = bounds
        return lambda x: 0 if x < v else 1
    if operator in ("<=", "LE"):
        (v,) = bounds
        return lambda x: 0 if x <= v else 1
    if operator in (">", "GT"):
        (v,) = bounds
        return lambda x: -1 if x <= v else 0
    if operator in (">=", "GE"):
        (v,) = bounds
        return lambda x: -1 if x < v else 0
    if operator == "BETWEEN":
        low, high = bounds
        return lambda x: -1 if x < low else (1 if x > high else 0)
    if operator == "BEGINS_WITH":
        (prefix,) = bounds
        if not isinstance(prefix, str):
            raise _NotCovered("begins_with on a non-string")
        return lambda x: 0 if x.startswith(prefix) else (-1 if x < prefix else 1)
    raise _NotCovered(f"sort key condition {operator}")


def _query_page(
    table: Table,
    hash_key: DynamoType | None,
    range_comparison: str | None,
    range_objs: list[DynamoType],
    limit: int | None,
    exclusive_start_key: dict[str, Any] | None,
    forward: bool,
    index_name: str | None,
    consistent_read: bool,
    hash_key_conditions: list[tuple[str, DynamoType]],
    range_key_conditions: list[tuple[str, str, list[DynamoType]]],
) -> tuple[list[Item], dict[str, Any] | None]:
    """The page moto's `Table.query` returns, before projection and FilterExpression."""
    hash_attrs, range_attrs, range_attr = _key_schema(table, index_name, consistent_read, range_comparison)
    if index_name:
        # moto matches an index Query on its hash key conditions only.
        if len(hash_key_conditions) != 1 or hash_key_conditions[0][0] != hash_attrs[0]:
            raise _NotCovered("hash key conditions")
        hash_value = hash_key_conditions[0][1]
    else:
        if hash_key is None:
            raise _NotCovered("no hash key")
        hash_value = hash_key
    if range_comparison and (
        len(range_key_conditions) != 1 or range_key_conditions[0][0] != range_attr or range_attr is None
    ):
        raise _NotCovered("range key conditions")
    if not range_comparison and range_key_conditions:
        raise _NotCovered("range key conditions without a comparison")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise _NotCovered("limit")
    attrs = table._generate_attr_to_sort_by(hash_attrs, range_attrs)
    types = _attribute_types(table)
    if attrs[0] != hash_attrs[0] or hash_value.type != types.get(attrs[0]):
        raise _NotCovered("hash key type")

    start_key: tuple[Any, ...] | None = None
    if exclusive_start_key is not None:
        try:
            values = [DynamoType(exclusive_start_key[attr]) for attr in attrs]
        except Exception as exc:
            raise _NotCovered("ExclusiveStartKey") from exc
        if any(value.type != types.get(attr) for attr, value in zip(attrs, values, strict=True)):
            raise _NotCovered("ExclusiveStartKey types")
        start_key = tuple(value.cast_value for value in values)

    side: Callable[[Any], int] | None = None
    position = 0
    if range_comparison:
        assert range_attr is not None
        if any(obj.type != types.get(range_attr) for obj in range_objs):
            raise _NotCovered("sort key condition types")
        try:
            side = _side(range_comparison, [obj.cast_value for obj in range_objs])
        except ValueError as exc:  # a wrong number of values
            raise _NotCovered("sort key condition values") from exc
        position = attrs.index(range_attr)

    try:
        groups = _groups_for(table, index_name, attrs)
    except _Stale as exc:
        raise _NotCovered(f"cannot group the table: {exc}") from exc
    group = groups.groups.get(hash_value.cast_value, [])

    def probe(value: Callable[[_Entry], Any]) -> Callable[[_Entry], Any]:
        def counted(entry: _Entry) -> Any:
            STATS.probes += 1
            return value(entry)

        return counted

    size = len(group)
    # The candidates moto would not skip, as [first, end) of the ascending group.
    first, end = 0, size
    if start_key is not None:
        if forward:
            first = bisect.bisect_right(group, start_key, key=probe(_sort_key))
        else:
            end = bisect.bisect_left(group, start_key, key=probe(_sort_key))
    # The candidates meeting the sort key condition, [low, high).
    low, high = 0, size
    if side is not None:
        condition = side

        def where_in_range(entry: _Entry) -> int:
            return condition(entry[0][position])

        where = probe(where_in_range)
        low = bisect.bisect_left(group, 0, key=where)
        high = bisect.bisect_left(group, 1, key=where)
    if forward:
        matching: range = range(max(first, low), min(end, high))
        after: range = range(max(first, high, low), end)
    else:
        matching = range(min(end, high) - 1, max(first, low) - 1, -1)
        after = range(min(end, low, high) - 1, first - 1, -1)

    def passes(item: Item) -> bool:
        attribute = item.attrs.get(range_attr) if range_attr else None
        return bool(attribute is not None and attribute.compare(range_comparison, range_objs))

    # moto's page loop: stop before an item when the page is full (by count or size), else take it.
    results: list[Item] = []
    result_size = 0
    for at in matching:
        item = groups.item(table, group[at])
        STATS.visited += 1
        if (limit is not None and len(results) == limit) or result_size + item.size() > RESULT_SIZE_LIMIT:
            return results, table._get_last_evaluated_key(results[-1], index_name)
        if range_comparison and not passes(item):
            raise _NotCovered("the sort key condition is not contiguous")
        results.append(item)
        result_size += item.size()
    # Candidates past the condition's range: moto reads on (taking none) until one would end the page.
    for at in after:
        item = groups.item(table, group[at])
        STATS.visited += 1
        if (limit is not None and len(results) == limit) or result_size + item.size() > RESULT_SIZE_LIMIT:
            return results, table._get_last_evaluated_key(results[-1], index_name)
        if range_comparison and passes(item):
            raise _NotCovered("the sort key condition is not contiguous")
        if result_size + MAX_ITEM_BYTES <= RESULT_SIZE_LIMIT:
            break  # no later candidate can end the page
    return results, None


def _index_queries() -> None:
    _patch(Table, "query", _query(Table.query))
    _patch(Table, "put_item", _put_item(Table.put_item))
    _patch(Table, "delete_item", _delete_item(Table.delete_item))
    _patch(DynamoDBBackend, "update_item", _update_item(_original(DynamoDBBackend, "update_item")))


# -- 3. Answers as plain JSON -------------------------------------------------------------------

JSON_HEADERS = {"Content-Type": "application/x-amz-json-1.0"}
# DynamoDB operations whose results are items, keys, counts and capacity: all in the wire format already.
PLAIN_OPERATIONS = frozenset(
    {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem", "BatchWriteItem",
     "TransactGetItems", "TransactWriteItems"}
)  # fmt: skip


class _NotPlainJson(Exception):
    """A value moto's serializer would transform (binary): let it."""


def _plain(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return TimestampSerializer._timestamp_unixtimestamp(value)
    raise _NotPlainJson(type(value).__name__)


def _get_records(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def get_records(self: DynamoDBStreamsHandler) -> Any:
        limit = self._get_param("Limit")
        result = self.backend.get_records(self._get_param("ShardIterator"), 1000 if limit is None else limit)
        try:
            body = json.dumps(result, default=_plain)
        except _NotPlainJson:
            return ActionResult(result)
        return body, dict(JSON_HEADERS)

    return get_records


def _fast_stream_records() -> None:
    _patch(DynamoDBStreamsHandler, "get_records", _get_records(DynamoDBStreamsHandler.get_records))


def _execute_result(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def execute_result(self: DynamoResult, context: Any) -> Any:
        operation = context.operation_model
        if operation.name in PLAIN_OPERATIONS and isinstance(self.result, dict):
            # Like the serializer, only what the operation's output shape has (moto adds e.g. a
            # DeleteItem's `ConsumedCapacityUnits` of an old API version).
            members = operation.output_shape.members
            try:
                body = json.dumps({k: v for k, v in self.result.items() if k in members}, default=_plain)
            except _NotPlainJson:
                pass
            else:
                STATS.plain += 1
                return 200, dict(JSON_HEADERS), body
        return original(self, context)

    return execute_result


def _plain_item_results() -> None:
    _patch(DynamoResult, "execute_result", _execute_result(DynamoResult.execute_result))


# -- 4. the server -------------------------------------------------------------------------------


class Server(ThreadedWSGIServer):
    """werkzeug's threaded server (what `run_simple` runs), with a listen backlog of 1,024, not 128: werkzeug
    closes every connection after its answer, so each AWS call is a new connection, and a dispatch sending to
    200 recipients at once overflowed the backlog (226 overflows in a 3,000-recipient run, `nstat`). The
    kernel drops a SYN it has no room for, and the client sends it again a second later; AWS takes them."""

    request_queue_size = 1024


class CachingDispatcher(DomainDispatcherApplication):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._backend_for_host: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        if host not in self._backend_for_host:
            self._backend_for_host[host] = super().get_backend_for_host(host)
        return self._backend_for_host[host]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    parser.add_argument("--unpatched", action="store_true", help="moto as released (to compare)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    def stop(signum: int, frame: FrameType | None) -> None:
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not args.unpatched:
        install_patches()
    moto_ses.install()  # an action the service calls, missing from moto (not a patch of its behaviour)
    # Part 4: the action names of a response class, listed by `inspect.getmembers` on every request (3% of the
    # server's CPU in a campaign), once per class; every class is complete by now.
    moto_responses.method_names_from_class = functools.cache(moto_responses.method_names_from_class)
    app: Any = CachingDispatcher(create_backend_app)
    if os.environ.get("MOTO_PROFILE"):
        from infra.local.moto_profile import Profiled

        app = Profiled(app, os.environ["MOTO_PROFILE"])
    server = Server(args.host, args.port, app, MotoRequestHandler)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
