"""moto's server as the local AWS, made faithful under concurrency and tuned for throughput.

The same WSGI app `python -m moto.server` runs, with three changes:
- DynamoDB writes are serialized. moto checks a condition and then writes, and numbers stream
  records by the length of a list, without a lock: concurrent writers (the event runner's dispatch
  threads) could both pass one condition, and two stream records could get one sequence number, so
  a stream reader re-reads a record. Real DynamoDB does neither.
- The backend serving each host is remembered (moto otherwise scans its module list and a few
  hundred URL patterns on every request, a fifth of its time under load).
- werkzeug's per-request access log is off.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")
_write_lock = threading.RLock()


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _write_lock:
            return method(self, *args, **kwargs)

    return call


def serialize_dynamodb_writes() -> None:
    for name in WRITES:
        setattr(DynamoDBBackend, name, _locked(getattr(DynamoDBBackend, name)))


class CachingDispatcher(DomainDispatcherApplication):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._backend_for_host: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        if host not in self._backend_for_host:
            self._backend_for_host[host] = super().get_backend_for_host(host)
        return self._backend_for_host[host]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    def stop(signum: int, frame: FrameType | None) -> None:
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    serialize_dynamodb_writes()
    app = CachingDispatcher(create_backend_app)
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
