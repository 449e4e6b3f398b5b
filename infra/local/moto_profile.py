"""Per-action CPU of the local moto server: `MOTO_PROFILE=/tmp/moto_prof.json` in the environment of a
stack's moto process wraps its WSGI app in `Profiled`, which writes, every 2 s, for each action (a
Query or UpdateItem also by table and expression): requests, CPU seconds of the thread that served them
(`time.thread_time`), wall seconds and response bytes. How the figures in docs/benchmarks.md per action
were measured."""

from __future__ import annotations

import collections
import io
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

DUMP_SECONDS = 2.0
PROCESS = "(process)"


class Profiled:
    def __init__(self, app: Callable[..., Iterable[bytes]], path: str) -> None:
        self.app, self.path = app, path
        self.stats: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0, 0])
        threading.Thread(target=self._dump, daemon=True, name="moto-profile").start()

    def _dump(self) -> None:
        while True:
            time.sleep(DUMP_SECONDS)
            # The whole process's CPU beside the actions': the rest is the HTTP server's and the threads'.
            snapshot = {**self.stats, PROCESS: [0, time.process_time(), 0, 0]}
            with open(self.path, "w", encoding="utf-8") as out:
                json.dump(snapshot, out)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        wall, cpu = time.perf_counter(), time.thread_time()
        action = _action(environ)
        body = b""
        try:
            body = b"".join(self.app(environ, start_response))
            return [body]
        finally:
            counts = self.stats[action]
            counts[0] += 1
            counts[1] += time.thread_time() - cpu
            counts[2] += time.perf_counter() - wall
            counts[3] += len(body)


def _action(environ: dict[str, Any]) -> str:
    target = str(environ.get("HTTP_X_AMZ_TARGET") or environ.get("PATH_INFO", ""))
    if target.endswith((".Query", ".UpdateItem")):
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(raw)
        request = json.loads(raw)
        table = str(request.get("TableName", "")).split("-")[-1]
        detail = request.get("KeyConditionExpression") or request.get("UpdateExpression", "")
        target += f" {table} {request.get('IndexName') or ''} {detail[:50]}"
    return target
