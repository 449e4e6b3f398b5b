"""A fake messaging provider speaking the Vonage Messages API wire format.

This is a real HTTP server (stdlib only) used by the local stack and the tests in place of the real
provider. It accepts ``POST /v1/messages`` like Vonage does, and adds the behaviours a bulk sender has to
cope with: rate limiting (429 + ``Retry-After``), transient failures (503), slow answers, idempotent
replays keyed by ``client_ref`` and, optionally, delivery-status callbacks to a webhook.

Order of checks for ``POST /v1/messages``: auth (401), rate limit (429), payload validation (422),
latency, transient failure (503), idempotent replay (202 with the original uuid), accept (202).

Control endpoints, for tests and the demo:

* ``GET /health`` -> ``{"ok": true}``
* ``GET /_fake/messages`` -> accepted messages plus counters
* ``GET /_fake/stats`` -> counters only
* ``POST /_fake/config`` -> change ``rate_limit_per_second``, ``transient_failure_rate``, ``latency_ms``,
  ``status_webhook_url``; answers the current config
* ``POST /_fake/reset`` -> clear records and counters, refill the bucket and reseed the random source

Run in the foreground with ``python -m infra.local.fake_provider --port 8081``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import http.client
import json
import queue
import random
import signal
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Self

ERROR_DOCS = "https://developer.nexmo.com/api-errors"
CHANNELS = frozenset({"sms", "whatsapp", "mms", "viber_service", "messenger"})
MAX_BODY_BYTES = 1_000_000
CONFIG_FIELDS = ("rate_limit_per_second", "transient_failure_rate", "latency_ms", "status_webhook_url")
WEBHOOK_TIMEOUT_SECONDS = 5.0
POLL_INTERVAL_SECONDS = 0.05  # how long stop() may wait for serve_forever() to notice

Json = dict[str, Any]


@dataclass
class ProviderConfig:
    """Runtime-adjustable behaviour of the fake provider."""

    rate_limit_per_second: float = 0.0
    transient_failure_rate: float = 0.0
    latency_ms: int = 0
    status_webhook_url: str | None = None


class TokenBucket:
    """Token bucket with burst = max(1, rate); a rate of 0 means unlimited. Not thread-safe on its own."""

    def __init__(self, rate_per_second: float) -> None:
        self.rate = rate_per_second
        self.capacity = max(1.0, rate_per_second)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def take(self) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def _problem(kind: str, title: str, detail: str, **extra: Any) -> Json:
    return {"type": f"{ERROR_DOCS}#{kind}", "title": title, "detail": detail, **extra}


def _iso_utc(epoch: float) -> str:
    millis = int((epoch % 1) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{millis:03d}Z"


def _has_credentials(header: str | None) -> bool:
    """True for ``Bearer <token>`` or ``Basic <base64 of non-empty text>``; any credentials will do."""
    if not header:
        return False
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    if not credentials:
        return False
    if scheme.lower() == "bearer":
        return True
    if scheme.lower() == "basic":
        try:
            return bool(base64.b64decode(credentials, validate=True).strip())
        except (binascii.Error, ValueError):
            return False
    return False


def _validate_send(body: Any) -> list[Json]:
    """Vonage-style ``invalid_parameters`` for a send payload; empty when the payload is valid."""
    if not isinstance(body, dict):
        return [{"name": "body", "reason": "must be a JSON object"}]
    problems: list[Json] = []
    to = body.get("to")
    if not (isinstance(to, str) and to.isascii() and to.isdigit() and 7 <= len(to) <= 15):
        problems.append({"name": "to", "reason": "must be 7-15 digits in E.164 format without a leading '+'"})
    sender = body.get("from")
    if not (isinstance(sender, str) and sender.strip()):
        problems.append({"name": "from", "reason": "is required and must be a non-empty string"})
    channel = body.get("channel")
    if channel not in CHANNELS:
        problems.append({"name": "channel", "reason": f"must be one of {', '.join(sorted(CHANNELS))}"})
    if body.get("message_type") != "text":
        problems.append({"name": "message_type", "reason": "must be 'text'"})
    text = body.get("text")
    if not (isinstance(text, str) and text):
        problems.append({"name": "text", "reason": "is required and must be a non-empty string"})
    client_ref = body.get("client_ref")
    if client_ref is not None and not isinstance(client_ref, str):
        problems.append({"name": "client_ref", "reason": "must be a string"})
    return problems


def _parse_config(body: Any) -> tuple[Json, list[Json]]:
    """Validated config changes and Vonage-style ``invalid_parameters`` for ``POST /_fake/config``."""
    if not isinstance(body, dict):
        return {}, [{"name": "body", "reason": "must be a JSON object"}]
    changes: Json = {}
    problems: list[Json] = []
    for name, value in body.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        valid = {
            "rate_limit_per_second": number and value >= 0,
            "transient_failure_rate": number and 0 <= value <= 1,
            "latency_ms": number and value >= 0,
            "status_webhook_url": value is None or isinstance(value, str),
        }
        if name not in valid:
            expected = ", ".join(CONFIG_FIELDS)
            problems.append({"name": name, "reason": f"unknown field; expected one of {expected}"})
        elif not valid[name]:
            problems.append({"name": name, "reason": "invalid value"})
        elif name == "latency_ms":
            changes[name] = int(value)
        elif name == "status_webhook_url":
            changes[name] = value or None
        else:
            changes[name] = float(value)
    return changes, problems


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], provider: FakeProvider) -> None:
        self.provider = provider
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; with Nagle on, keep-alive replies stall ~40 ms each.
    disable_nagle_algorithm = True
    server_version = "FakeVonage/1.0"
    timeout = 60  # idle keep-alive connections are dropped after this many seconds
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # --- plumbing -------------------------------------------------------------------------------------

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering 413 for an oversized or malformed length."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send_json(413, _problem("payload-too-large", "Payload Too Large", "Body is too large."))
            return None
        return self.rfile.read(length) if length else b""

    def _send_json(self, status: int, payload: Json, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        content_type = "application/problem+json" if status >= 400 else "application/json"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    @staticmethod
    def _json(raw: bytes) -> Any:
        try:
            return json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            return None

    def _not_found(self) -> None:
        self._send_json(404, _problem("not-found", "Not Found", f"No route for {self.command} {self.path}."))

    # --- routing --------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        provider = self.server.provider
        path = self.path.split("?", 1)[0]
        if path == "/health":
            self._send_json(200, {"ok": True})
        elif path == "/_fake/messages":
            self._send_json(200, {"messages": provider.messages(), **provider.stats()})
        elif path == "/_fake/stats":
            self._send_json(200, provider.stats())
        elif path == "/_fake/config":
            self._send_json(200, provider.config())
        else:
            self._not_found()

    def do_POST(self) -> None:
        raw = self._read_body()
        if raw is None:
            return
        path = self.path.split("?", 1)[0]
        if path == "/v1/messages":
            self._send_message(raw)
        elif path == "/_fake/config":
            changes, problems = _parse_config(self._json(raw))
            if problems:
                detail = "The config request contained invalid parameters."
                self._send_json(422, _problem("invalid-params", "Invalid params", detail, invalid_parameters=problems))
            else:
                self._send_json(200, self.server.provider.configure(**changes))
        elif path == "/_fake/reset":
            self.server.provider.reset()
            self._send_json(200, {"ok": True})
        else:
            self._not_found()

    def _send_message(self, raw: bytes) -> None:
        provider = self.server.provider
        provider._count("requests")
        if not _has_credentials(self.headers.get("Authorization")):
            detail = "You did not provide correct credentials."
            self._send_json(401, _problem("unauthorized", "Unauthorized", detail))
            return
        if not provider._take_token():
            detail = "Please wait, then retry your request."
            self._send_json(429, _problem("throttled", "Rate Limit Hit", detail), {"Retry-After": "1"})
            return
        body = self._json(raw)
        problems = _validate_send(body)
        if problems:
            detail = "The request failed due to validation errors."
            self._send_json(422, _problem("invalid-params", "Invalid params", detail, invalid_parameters=problems))
            return
        latency_ms = provider.config()["latency_ms"]
        if latency_ms > 0:
            time.sleep(latency_ms / 1000)
        message_uuid = provider._accept(body)
        if message_uuid is None:
            detail = "The service is temporarily unavailable; please retry later."
            self._send_json(503, _problem("service-unavailable", "Service Unavailable", detail))
            return
        self._send_json(202, {"message_uuid": message_uuid})


class FakeProvider:
    """An in-process fake Vonage Messages API; ``start()`` serves it from a daemon thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit_per_second: float = 0.0,
        transient_failure_rate: float = 0.0,
        seed: int = 0,
        latency_ms: int = 0,
        status_webhook_url: str | None = None,
    ) -> None:
        changes, problems = _parse_config(
            {
                "rate_limit_per_second": rate_limit_per_second,
                "transient_failure_rate": transient_failure_rate,
                "latency_ms": latency_ms,
                "status_webhook_url": status_webhook_url,
            }
        )
        if problems:
            raise ValueError(f"invalid fake provider config: {problems}")
        self._host = host
        self._port = port
        self._seed = seed
        self._lock = threading.Lock()
        self._config = ProviderConfig(**changes)
        self._bucket = TokenBucket(self._config.rate_limit_per_second)
        self._random = random.Random(seed)
        self._messages: list[Json] = []
        self._uuid_by_client_ref: dict[str, str] = {}
        self._counters = self._zero_counters()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._serving = False
        self._webhooks: queue.Queue[tuple[str, Json] | None] = queue.Queue()
        self._webhook_thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------------

    def bind(self) -> str:
        """Bind the listening socket (idempotent) and return the base URL, without serving yet."""
        with self._lock:
            if self._server is None:
                self._server = _Server((self._host, self._port), self)
            if self._webhook_thread is None:
                self._webhook_thread = threading.Thread(
                    target=self._deliver_webhooks, name="fake-provider-webhooks", daemon=True
                )
                self._webhook_thread.start()
        return self.base_url

    def start(self) -> str:
        """Serve from a daemon thread (idempotent) and return the base URL, e.g. ``http://127.0.0.1:PORT``."""
        url = self.bind()
        with self._lock:
            if self._thread is None and self._server is not None and not self._serving:
                self._serving = True
                self._thread = threading.Thread(
                    target=self._server.serve_forever,
                    args=(POLL_INTERVAL_SECONDS,),
                    name="fake-provider",
                    daemon=True,
                )
                self._thread.start()
        return url

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``stop()`` is called from another thread."""
        self.bind()
        with self._lock:
            server = self._server
            if server is None or self._serving:
                return
            self._serving = True
        server.serve_forever(POLL_INTERVAL_SECONDS)

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call more than once, from any thread but the one
        inside ``serve_forever()``."""
        with self._lock:
            server, thread, webhook_thread = self._server, self._thread, self._webhook_thread
            serving = self._serving
            self._server = self._thread = self._webhook_thread = None
            self._serving = False
        if webhook_thread is not None:
            self._webhooks.put(None)
        if server is not None:
            if serving:
                server.shutdown()
            server.server_close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        server = self._server
        if server is None:
            raise RuntimeError("fake provider is not running; call start() first")
        host, port = server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"

    # --- in-process accessors -------------------------------------------------------------------------

    def messages(self) -> list[Json]:
        """Copies of the accepted messages, oldest first."""
        with self._lock:
            return [dict(message) for message in self._messages]

    def stats(self) -> Json:
        """Counters: ``accepted``, ``duplicates``, ``throttled``, ``transient_failures``, ``requests``."""
        with self._lock:
            return {"accepted": len(self._messages), **self._counters}

    def config(self) -> Json:
        with self._lock:
            return asdict(self._config)

    def configure(self, **changes: Any) -> Json:
        """Change any of the config fields at runtime; answers the resulting config."""
        parsed, problems = _parse_config(changes)
        if problems:
            raise ValueError(f"invalid fake provider config: {problems}")
        with self._lock:
            for name, value in parsed.items():
                setattr(self._config, name, value)
            if "rate_limit_per_second" in parsed:
                self._bucket = TokenBucket(self._config.rate_limit_per_second)
            return asdict(self._config)

    def reset(self) -> None:
        """Forget accepted messages and counters, refill the bucket and reseed the random source."""
        with self._lock:
            self._messages.clear()
            self._uuid_by_client_ref.clear()
            self._counters = self._zero_counters()
            self._bucket = TokenBucket(self._config.rate_limit_per_second)
            self._random = random.Random(self._seed)

    # --- request-side state changes (used by the handler) ---------------------------------------------

    @staticmethod
    def _zero_counters() -> dict[str, int]:
        return {"duplicates": 0, "throttled": 0, "transient_failures": 0, "requests": 0}

    def _count(self, counter: str) -> None:
        with self._lock:
            self._counters[counter] += 1

    def _take_token(self) -> bool:
        with self._lock:
            if self._bucket.take():
                return True
            self._counters["throttled"] += 1
            return False

    def _accept(self, body: Json) -> str | None:
        """The message uuid for a valid send (the original one for a replayed client_ref), or None for a
        simulated transient failure."""
        with self._lock:
            rate = self._config.transient_failure_rate
            if rate > 0 and self._random.random() < rate:
                self._counters["transient_failures"] += 1
                return None
            client_ref = body.get("client_ref")
            if client_ref is not None and client_ref in self._uuid_by_client_ref:
                self._counters["duplicates"] += 1
                return self._uuid_by_client_ref[client_ref]
            message = {
                "message_uuid": str(uuid.uuid4()),
                "to": body["to"],
                "from": body["from"],
                "channel": body["channel"],
                "text": body["text"],
                "client_ref": client_ref,
                "accepted_at": time.time(),
            }
            self._messages.append(message)
            if client_ref is not None:
                self._uuid_by_client_ref[client_ref] = message["message_uuid"]
            webhook_url = self._config.status_webhook_url
        if webhook_url:
            self._webhooks.put((webhook_url, self._status_callback(message)))
        return str(message["message_uuid"])

    @staticmethod
    def _status_callback(message: Json) -> Json:
        callback = {
            "message_uuid": message["message_uuid"],
            "to": message["to"],
            "from": message["from"],
            "timestamp": _iso_utc(time.time()),
            "status": "delivered",
            "channel": message["channel"],
        }
        if message["client_ref"] is not None:
            callback["client_ref"] = message["client_ref"]
        return callback

    def _deliver_webhooks(self) -> None:
        """Best-effort delivery of status callbacks, one at a time, errors ignored."""
        while True:
            item = self._webhooks.get()
            if item is None:
                return
            url, payload = item
            # Best effort, like the real provider: a receiver that is down, slow or malformed is skipped.
            with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
                request = urllib.request.Request(
                    url,
                    data=json.dumps(payload).encode(),
                    headers={"Content-Type": "application/json"},
                    method="POST",
                )
                with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
                    response.read()


# --- command line -------------------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m infra.local.fake_provider",
        description="Run the fake Vonage Messages API provider in the foreground.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port to bind, 0 for any (default: 8081)")
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=0.0,
        help="sends per second before answering 429, 0 = unlimited (default: 0)",
    )
    parser.add_argument(
        "--transient-failure-rate",
        type=float,
        default=0.0,
        help="fraction 0..1 of valid sends answered 503 (default: 0)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for transient failures (default: 0)")
    parser.add_argument("--latency-ms", type=int, default=0, help="delay before answering sends (default: 0)")
    parser.add_argument(
        "--status-webhook-url",
        default=None,
        help="POST a 'delivered' status callback here for every accepted message",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        provider = FakeProvider(
            host=args.host,
            port=args.port,
            rate_limit_per_second=args.rate_limit,
            transient_failure_rate=args.transient_failure_rate,
            seed=args.seed,
            latency_ms=args.latency_ms,
            status_webhook_url=args.status_webhook_url,
        )
        url = provider.bind()
    except (ValueError, OSError) as error:
        print(f"fake provider: {error}", file=sys.stderr, flush=True)
        return 2

    stoppers: list[threading.Thread] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        # stop() blocks until serve_forever() returns, and serve_forever() runs in this (the main) thread,
        # so it has to be called from another one.
        stopper = threading.Thread(target=provider.stop, name="fake-provider-stop", daemon=True)
        stoppers.append(stopper)
        stopper.start()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    print(f"fake provider listening on {url}", flush=True)
    provider.serve_forever()
    for stopper in stoppers:
        stopper.join(timeout=5)
    provider.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
