"""A fake customer endpoint for HTTP actions: records every request it gets (method, path, headers, body)
and answers as scripted. It is no kinder than a real endpoint: it does not deduplicate, so a resend is
recorded again (and counted in `duplicates` when its `Idempotency-Key` was seen before).

Script: `status` (every answer), `body` (JSON answered), `headers` (sent with it), `latency_ms`, `by_path`
(a path's own list of statuses, answered in turn, then `status`), and `timeout_after_receive_ms` (hold the
answer: a client with a shorter timeout gives up although the request arrived).

    with FakeEndpoint() as endpoint:
        endpoint.script(status=503)
        ... endpoint.requests ...
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # the default backlog of 5 resets connections a real endpoint would take


@dataclass
class Script:
    status: int = 200
    body: Any = field(default_factory=lambda: {"status": "ok"})
    latency_ms: int = 0
    by_path: dict[str, list[int]] = field(default_factory=dict)
    timeout_after_receive_ms: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # sent with every answer (e.g. Location)


class FakeEndpoint:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._script = Script()
        self.requests: list[dict[str, Any]] = []
        self.duplicates = 0
        self._keys: Counter[str] = Counter()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as separate writes: with Nagle on, each keep-alive answer stalls ~40 ms.
            disable_nagle_algorithm = True

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, answer, hold, extra = endpoint._record(self.command, self.path, dict(self.headers), body)
                time.sleep(hold)
                # A 204 or 304 has no body (RFC 9110): bytes after one would be read as the next answer.
                data = b"" if status in (204, 304) else json.dumps(answer).encode()
                with contextlib.suppress(OSError):  # the client may have given up
                    self.send_response(status)
                    if data:
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(data)))
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-endpoint")

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self._script, name, value)

    def _record(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, float, dict[str, str]]:
        with self._lock:
            key = headers.get("Idempotency-Key") or ""
            self._keys[key] += 1
            duplicate = bool(key) and self._keys[key] > 1
            self.duplicates += duplicate
            self.requests.append(
                {
                    "method": method,
                    "path": path,
                    "headers": headers,
                    "body": body.decode(errors="replace"),
                    "at": time.time(),
                }
            )
            script = self._script
            turns = script.by_path.get(path.split("?", 1)[0])
            status = turns.pop(0) if turns else script.status
            hold = (script.latency_ms + script.timeout_after_receive_ms) / 1000
            return status, script.body, hold, dict(script.headers)

    def paths(self) -> list[str]:
        with self._lock:
            return [r["path"] for r in self.requests]

    def __enter__(self) -> FakeEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
