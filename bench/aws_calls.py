"""Counts AWS requests by service and operation with botocore events (one per API call)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem"}


class AwsCallCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[tuple[str, str, str]] = Counter()  # (who, service, operation)
        self.write_units: Counter[str] = Counter()  # who -> DynamoDB items written (each under 1 KB)
        self.batch_get_keys: Counter[str] = Counter()

    def attach(self, who: str, *clients: Any) -> None:
        for client in clients:
            client.meta.events.register("before-parameter-build.*.*", self._before_call(who))

    def _before_call(self, who: str) -> Any:
        def count(model: Any, params: dict[str, Any], **_: Any) -> None:
            service = model.service_model.service_name
            with self._lock:
                self.calls[(who, service, model.name)] += 1
                if service == "dynamodb" and model.name in WRITE_OPERATIONS:
                    self.write_units[who] += 1
                elif service == "dynamodb" and model.name == "BatchWriteItem":
                    self.write_units[who] += sum(len(v) for v in params["RequestItems"].values())
                elif service == "dynamodb" and model.name == "BatchGetItem":
                    self.batch_get_keys[who] += sum(len(v["Keys"]) for v in params["RequestItems"].values())

        return count

    def snapshot(self) -> AwsCallCounter:
        copy = AwsCallCounter()
        with self._lock:
            copy.calls = Counter(self.calls)
            copy.write_units = Counter(self.write_units)
            copy.batch_get_keys = Counter(self.batch_get_keys)
        return copy

    def since(self, earlier: AwsCallCounter) -> AwsCallCounter:
        later = self.snapshot()
        later.calls.subtract(earlier.calls)
        later.write_units.subtract(earlier.write_units)
        later.batch_get_keys.subtract(earlier.batch_get_keys)
        return later
