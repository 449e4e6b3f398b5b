"""Counts AWS requests with botocore events on the clients: calls by service and operation, DynamoDB
write units (base tables and global secondary indexes), every write's partition key with its time
(for hot keys), and every HTTP answer of local AWS (5xx, retried attempts).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import botocore.session

from bench.dynamodb_writes import Schemas, item_writes
from infra.local.resources import DEFAULT_TEMPLATE_PATH, load_template


@dataclass(frozen=True)
class KeyWrite:
    """One item written: when (time.monotonic()), by whom, to which table and partition key."""

    at: float
    who: str
    table: str
    partition_key: str


class AwsCallCounter:
    def __init__(self, schemas: Schemas | None = None) -> None:
        self._lock = threading.Lock()
        self._schemas = schemas or Schemas(load_template(DEFAULT_TEMPLATE_PATH))
        self._labels: dict[int, str] = {}  # id(client) -> who
        self.calls: Counter[tuple[str, str, str]] = Counter()  # (who, service, operation)
        self.write_units: Counter[str] = Counter()  # who -> base-table write units (every item under 1 KB)
        self.write_units_by: Counter[tuple[str, str, str]] = Counter()  # (who, table, operation) -> units
        self.index_units: Counter[tuple[str, str, str]] = Counter()  # (who, table, index) -> GSI write units
        self.batch_get_keys: Counter[str] = Counter()
        self.answers: Counter[tuple[str, str, str, str]] = Counter()  # (who, service, operation, class) e.g. "5xx"
        self.retried: Counter[tuple[str, str, str]] = Counter()  # attempts after the first
        self.key_writes: list[KeyWrite] = []
        # Without key_writes kept (a run of millions of writes): writes per key, and per key and whole second.
        self.keep_key_writes = True
        self.key_counts: Counter[tuple[str, str, str]] = Counter()  # (who, table, partition key)
        self.key_seconds: Counter[tuple[str, str, str, int]] = Counter()  # (who, table, key, int(monotonic))

    # -- attaching -------------------------------------------------------------------------------

    def attach(self, who: str, *clients: Any) -> None:
        """Count these clients' requests as made by `who` (re-attaching only relabels)."""
        for client in clients:
            with self._lock:
                known = id(client) in self._labels
                self._labels[id(client)] = who
            if not known:
                events = client.meta.events
                events.register("before-parameter-build.*.*", self._before_call(id(client)))
                events.register("needs-retry", self._answer(id(client)))

    @contextmanager
    def counting_new_clients(self, who: str) -> Iterator[None]:
        """Count every botocore client created in this process meanwhile, whoever creates it."""
        original = botocore.session.Session.create_client

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            self.attach(who, client)
            return client

        setattr(botocore.session.Session, "create_client", create_client)  # noqa: B010
        try:
            yield
        finally:
            setattr(botocore.session.Session, "create_client", original)  # noqa: B010

    def _who(self, client_id: int) -> str:
        return self._labels.get(client_id, "?")

    def _before_call(self, client_id: int) -> Any:
        def count(model: Any, params: dict[str, Any], **_: Any) -> None:
            service, operation, now = model.service_model.service_name, model.name, time.monotonic()
            writes = item_writes(operation, params, self._schemas) if service == "dynamodb" else []
            with self._lock:
                who = self._who(client_id)
                self.calls[(who, service, operation)] += 1
                if service == "dynamodb" and operation == "BatchGetItem":
                    self.batch_get_keys[who] += sum(len(v["Keys"]) for v in params["RequestItems"].values())
                for write in writes:
                    self.write_units[who] += write.units
                    self.write_units_by[(who, write.table, operation)] += write.units
                    for index in write.indexes:
                        self.index_units[(who, write.table, index)] += 1
                    if self.keep_key_writes:
                        self.key_writes.append(KeyWrite(now, who, write.table, write.partition_key))
                    else:
                        self.key_counts[(who, write.table, write.partition_key)] += 1
                        self.key_seconds[(who, write.table, write.partition_key, int(now))] += 1

        return count

    def _answer(self, client_id: int) -> Any:
        def count(operation: Any, attempts: int, response: Any = None, caught_exception: Any = None, **_: Any) -> None:
            if response is not None:
                status = int(getattr(response[0], "status_code", 0) or 0)
                kind = f"{status // 100}xx"
            else:
                kind = f"no answer ({type(caught_exception).__name__})"
            key = (self._who(client_id), operation.service_model.service_name, operation.name)
            with self._lock:
                self.answers[(*key, kind)] += 1
                if attempts > 1:
                    self.retried[key] += 1

        return count

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (a run comes back from its own process): without the lock and the client labels."""
        state = dict(self.__dict__)
        del state["_lock"]
        state["_labels"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- reading ---------------------------------------------------------------------------------

    def server_errors(self) -> int:
        """HTTP 5xx answers of local AWS, retried ones included."""
        return sum(v for (*_, kind), v in self.answers.items() if kind == "5xx")

    def write_unit_total(self, who: str) -> int:
        """Base-table plus GSI write units of `who`."""
        return self.write_units[who] + sum(v for (w, _, _), v in self.index_units.items() if w == who)

    def snapshot(self) -> AwsCallCounter:
        copy = AwsCallCounter(self._schemas)
        copy.keep_key_writes = self.keep_key_writes
        with self._lock:
            for name in _COUNTERS:
                setattr(copy, name, Counter(getattr(self, name)))
            copy.key_writes = list(self.key_writes)
        return copy

    def since(self, earlier: AwsCallCounter) -> AwsCallCounter:
        later = self.snapshot()
        for name in _COUNTERS:
            counter: Counter[Any] = getattr(later, name)
            counter.subtract(getattr(earlier, name))
            setattr(later, name, +counter)  # drop the zeros
        later.key_writes = later.key_writes[len(earlier.key_writes) :]
        return later


_COUNTERS = (
    "calls", "write_units", "write_units_by", "index_units", "batch_get_keys", "answers", "retried",
    "key_counts", "key_seconds",
)  # fmt: skip
