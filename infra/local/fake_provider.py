"""A fake messaging provider speaking the Vonage Messages API wire format.

This is a real HTTP server (stdlib only) used by the local stack and the tests in place of the real
provider. It accepts ``POST /v1/messages`` like Vonage does, and is no kinder than Vonage: it does not
deduplicate on ``client_ref``, so a resend goes out again. Every accepted send is recorded with a fresh
uuid; one whose ``client_ref`` (or, without a ``client_ref``, whose ``to`` and ``text``) was accepted
before is also counted in ``duplicates`` and its record carries ``"duplicate": true``. With
``dedup_client_ref`` on, a repeated ``client_ref`` is instead answered with the original uuid and recorded
nowhere but in ``duplicates`` (what a provider honouring idempotency keys would do).

It also plays the faults a bulk sender has to cope with, all drawn from one seeded random source (see
``infra.local.fake_provider_faults``): rate limiting (429 without ``Retry-After``, as Vonage answers), slow answers
(``latency_ms``), scripted failures (``fail_statuses``, e.g. ``{"503": 0.05, "400": 0.01}``: 400 invalid
params, 401, 402, 403, 429, 500, 503; ``transient_failure_rate`` adds to the 503 share), an
accepted send answered 200 without ``message_uuid`` (``missing_uuid_rate``) and an accepted send whose
answer is held ``timeout_after_accept_ms`` before the 202 (``timeout_after_accept_rate``), so a client
with a shorter timeout gives up although the message went out. Optionally it posts the status callbacks
of every recorded message to a webhook (submitted, then delivered, or ``receipts_by_number``'s rejected or
undeliverable, or nothing after submitted; a delivered WhatsApp, Viber or Messenger message also read), each
signed as Vonage signs them and retried while the receiver refuses it.

WhatsApp's customer service window is kept as Vonage keeps it: a WhatsApp ``text`` message (not a template)
to a number that has not messaged the sending number on WhatsApp (``inbound``, channel whatsapp) within the
last 24 hours is refused 422 with the Messages API's error 1340, "Outside of the allowed window", and counted
in ``outside_window``; a template is always taken. Messenger's is kept the same way: a message tagged
``response`` or ``update`` (or untagged: Vonage's default is ``response``) to a person who has not written to
the page (``inbound``, channel messenger) within 24 hours is refused alike; a ``message_tag`` one is taken.

MMS, Viber and Messenger sends are held to their channel's part of the description too, and to what it says
only in words: an MMS image URL is https (Vonage fetches it), a Messenger ``to`` is a page-scoped id and its
``from`` a page id (digits).

Order of checks for ``POST /v1/messages``: auth (401), rate limit (429), payload validation (422),
latency (the answer waits, other requests do not), the WhatsApp window (422, 1340), the number's script
(``scripted_by_number``, e.g. ``{"15550001": [503, 400]}``: its sends are answered those statuses in turn,
then as usual), scripted failure (``fail_statuses`` and ``transient_failure_rate``), then accept: with
``dedup_client_ref`` a repeated ``client_ref`` is answered 202 with the original uuid; otherwise the message
is recorded (flagged if a duplicate) and answered 202, or 200 ``{}`` (missing uuid), or 202 after
``timeout_after_accept_ms`` (timeout after accept).

``POST /v1/calls`` is the Voice API (``infra.local.fake_voice``): the application's JWT, the published
create-call description, scripted call outcomes and signed events posted back to each call's event URL.

Control endpoints, for tests and the demo:

* ``GET /health`` -> ``{"ok": true}``
* ``GET /_fake/messages`` -> every recorded message (duplicates included, flagged) plus the counters
* ``GET /_fake/stats`` -> counters: ``accepted`` (recorded messages), ``unique_recipients``, ``requests``,
  ``duplicates``, ``throttled`` (rate limit 429s), ``transient_failures`` (503s), ``missing_uuid``,
  ``timed_out_after_accept`` and ``failed_by_status`` (scripted failures by status, 503s included)
* ``GET /_fake/config`` -> the current config
* ``POST /_fake/config`` -> change any of ``rate_limit_per_second``, ``transient_failure_rate``,
  ``latency_ms``, ``status_webhook_url``, ``inbound_webhook_url``, ``dedup_client_ref``, ``missing_uuid_rate``,
  ``timeout_after_accept_rate``, ``timeout_after_accept_ms``, ``fail_statuses`` (replaces the whole mix),
  ``scripted_by_number`` (replaces every script and starts them over), ``balance_messages`` (what the account
  can still pay for: each accepted message takes one, and at 0 every send is a 402), ``receipts_by_number``
  (a number -> delivered, rejected, undeliverable or submitted: how its callbacks end); answers the current
  config, or 422 naming the invalid fields (nothing changes then)
* ``GET /_fake/calls`` -> every call placed, with its scripted outcome, and the voice counters
* ``POST /_fake/voice`` -> change the voice config (``outcomes`` mix, ``scripted_by_number``,
  ``event_delay_ms``, ``call_seconds``, ``retries``, ``retry_base_ms``)
* ``POST /_fake/inbound`` -> a recipient's message to one of the account's numbers (``from``, ``to``,
  ``text``, ``channel`` sms, whatsapp or messenger, optionally ``at``: when it was sent, epoch seconds), posted signed
  to ``inbound_webhook_url`` as the Messages API posts inbound messages (and retried the same way); answers
  its ``message_uuid``
* ``POST /_fake/reset`` -> clear records and counters, refill the bucket and reseed the random source

Run in the foreground with ``python -m infra.local.fake_provider --port 8081`` (``--help`` lists the
flags for every config field).
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
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

from infra.local.fake_provider_faults import (
    MISSING_UUID,
    TIMEOUT_AFTER_ACCEPT,
    ProviderConfig,
    add_fault_arguments,
    draw_answer_fault,
    draw_failure,
    failure_answer,
    fault_options,
    initial_counters,
    parse_config,
)
from infra.local.fake_provider_faults import problem as _problem
from infra.local.fake_voice import FakeVoice, config_dict, sign
from infra.local.vonage_contract import request_problems, warm_up

__all__ = ["FakeProvider", "ProviderConfig", "TokenBucket", "main"]

MAX_BODY_BYTES = 1_000_000
# WhatsApp's customer service window: free-form text only this long after the person's last message.
WHATSAPP_WINDOW_SECONDS = 24 * 3600
WEBHOOK_TIMEOUT_SECONDS = 5.0
WEBHOOK_RETRIES = 4
# Lanes posting status callbacks at once (each message's in one lane, in order), besides the inbound lane.
STATUS_LANES = 4
POLL_INTERVAL_SECONDS = 0.05  # how long stop() may wait for serve_forever() to notice

Json = dict[str, Any]


@dataclass
class _Answer:
    """What the handler sends for a send, decided under the provider's lock."""

    status: int
    payload: Json
    headers: dict[str, str] | None = None
    hold_seconds: float = 0.0  # wait this long (outside the lock) before answering


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


def _iso_utc(epoch: float) -> str:
    millis = int((epoch % 1) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{millis:03d}Z"


def _has_credentials(header: str | None, known: tuple[str, str] | None = None) -> bool:
    """Without `known` credentials: True for ``Bearer <token>`` or ``Basic <base64 of non-empty text>``.
    With them (the local stack's, a test's), only Basic with that key and secret, as Vonage refuses a key
    it does not know or a wrong secret: a JWT cannot be checked here without the application's key."""
    if not header:
        return False
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    if not credentials:
        return False
    if scheme.lower() == "bearer":
        return known is None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True)
        except (binascii.Error, ValueError):
            return False
        if known is None:
            return bool(decoded.strip())
        return decoded == f"{known[0]}:{known[1]}".encode()
    return False


def _validate_send(body: Any) -> list[Json]:
    """Vonage-style ``invalid_parameters`` for a send payload; empty when the payload is valid. The payload
    is held to the Messages API's published description (``infra/local/vonage_contract.py``), and the
    recipient to digits and the sender to a non-empty string, which the description says in words."""
    if not isinstance(body, dict):
        return [{"name": "body", "reason": "must be a JSON object"}]
    problems: list[Json] = []
    for problem in request_problems(body)[:1]:  # the most relevant one, as Vonage names one
        name, _, reason = problem.partition(": ")
        problems.append({"name": name.replace("/", "."), "reason": reason})
    to = body.get("to")
    messenger = body.get("channel") == "messenger"
    if isinstance(to, str) and not (to.isascii() and to.isdigit()):
        reason = "must be the person's page-scoped id (digits)" if messenger else "must be digits in E.164 format"
        problems.append({"name": "to", "reason": f"{reason} without a leading '+'"})  # Vonage's ErrorRecipient
    sender = body.get("from")
    if isinstance(sender, str) and not sender.strip():
        problems.append({"name": "from", "reason": "must not be empty"})  # Vonage's ErrorSender
    elif messenger and isinstance(sender, str) and not (sender.isascii() and sender.isdigit()):
        problems.append({"name": "from", "reason": "must be the Facebook page id (digits)"})
    image = body.get("image")
    url = image.get("url") if isinstance(image, dict) else None
    if isinstance(url, str) and not url.lower().startswith("https://"):
        # Vonage fetches the media itself, over https only (error 1420, "Invalid resource").
        problems.append({"name": "image.url", "reason": "must be a publicly accessible https URL"})
    return problems


# Each channel's own options object in a send request, recorded as sent (`options` of a recorded message).
_OPTIONS = {"viber_service": "viber_service", "messenger": "messenger", "whatsapp": "whatsapp"}
# The channels whose status callbacks go on to `read` after `delivered` (the described Viber, Messenger and
# WhatsApp statuses have it; SMS and MMS do not).
_READ_CHANNELS = frozenset({"whatsapp", "viber_service", "messenger"})


def _needs_window(body: Json) -> bool:
    """Whether the send reaches only someone who wrote to the sender in the last 24 hours: WhatsApp text (not a
    template), and Messenger's `response` and `update` messages (not a `message_tag` one)."""
    if body["channel"] == "whatsapp":
        return bool(body["message_type"] != "template")
    if body["channel"] == "messenger":
        return (body.get("messenger") or {}).get("category", "response") != "message_tag"
    return False


def _content(body: Json) -> str:
    """What the recipient gets: the text, an image's URL and caption, or a WhatsApp template's name, locale and
    parameters."""
    if body["message_type"] == "text":
        return str(body["text"])
    if body["message_type"] == "image":
        return json.dumps([body["image"]["url"], body["image"].get("caption")])
    template = body["template"]
    return json.dumps([template["name"], body["whatsapp"]["locale"], template.get("parameters", [])])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 refuses connections a real provider would take: a dispatch
    # sending 50 at once to a slow provider must not see "connection refused".
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], provider: FakeProvider) -> None:
        self.provider = provider
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (e.g. timed out on a held answer) is no error of the server's.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


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
        elif path == "/_fake/calls":
            self._send_json(200, {"calls": provider.voice.calls(), **provider.voice.stats()})
        else:
            self._not_found()

    def do_POST(self) -> None:
        raw = self._read_body()
        if raw is None:
            return
        path = self.path.split("?", 1)[0]
        if path == "/v1/messages":
            self._send_message(raw)
        elif path == "/v1/calls":
            status, payload = self.server.provider.voice.create_call(self.headers.get("Authorization"), self._json(raw))
            self._send_json(status, payload)
        elif path == "/_fake/voice":
            problems = self.server.provider.voice.configure(self._json(raw))
            if problems:
                detail = "The voice config request contained invalid parameters."
                self._send_json(422, _problem("invalid-params", "Invalid params", detail, invalid_parameters=problems))
            else:
                self._send_json(200, config_dict(self.server.provider.voice))
        elif path == "/_fake/config":
            config, problems = self.server.provider._apply_config(self._json(raw))
            if problems:
                detail = "The config request contained invalid parameters."
                self._send_json(422, _problem("invalid-params", "Invalid params", detail, invalid_parameters=problems))
            else:
                self._send_json(200, config)
        elif path == "/_fake/inbound":
            status, payload = self.server.provider.inbound_request(self._json(raw))
            self._send_json(status, payload)
        elif path == "/_fake/reset":
            self.server.provider.reset()
            self._send_json(200, {"ok": True})
        else:
            self._not_found()

    def _send_message(self, raw: bytes) -> None:
        provider = self.server.provider
        provider._count("requests")
        provider._enter()
        try:
            self._answer_send(raw)
        finally:
            provider._leave()

    def _answer_send(self, raw: bytes) -> None:
        provider = self.server.provider
        if not _has_credentials(self.headers.get("Authorization"), provider.credentials):
            detail = "You did not provide correct credentials."
            self._send_json(401, _problem("unauthorized", "Unauthorized", detail))
            return
        if not provider._take_token():
            detail = "Please wait, then retry your request."
            self._send_json(429, _problem("throttled", "Rate Limit Hit", detail))  # Vonage sends no Retry-After
            return
        body = self._json(raw)
        problems = _validate_send(body)
        if problems:
            detail = "The request failed due to validation errors."
            self._send_json(422, _problem("invalid-params", "Invalid params", detail, invalid_parameters=problems))
            return
        latency_ms = provider.config()["latency_ms"]
        if latency_ms > 0:
            provider._hold(latency_ms / 1000)  # without the lock: other requests go on meanwhile
        answer = provider._accept(body)
        if answer.hold_seconds > 0:
            provider._hold(answer.hold_seconds)
            # The client has most likely given up: answer if it still listens, then close either way (and say
            # so, or a client that did wait could reuse the connection as it closes).
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send_json(answer.status, answer.payload, {**(answer.headers or {}), "Connection": "close"})
            return
        self._send_json(answer.status, answer.payload, answer.headers)


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
        *,
        inbound_webhook_url: str | None = None,
        dedup_client_ref: bool = False,
        missing_uuid_rate: float = 0.0,
        timeout_after_accept_rate: float = 0.0,
        timeout_after_accept_ms: int = 30_000,
        fail_statuses: Mapping[str | int, float] | None = None,
        credentials: tuple[str, str] | None = None,
        voice_public_key: str | None = None,
        voice_application_id: str | None = None,
        signature_secret: str = "local-signature-secret-0123456789abcdef",
    ) -> None:
        changes, problems = parse_config(
            {
                "rate_limit_per_second": rate_limit_per_second,
                "transient_failure_rate": transient_failure_rate,
                "latency_ms": latency_ms,
                "status_webhook_url": status_webhook_url,
                "inbound_webhook_url": inbound_webhook_url,
                "dedup_client_ref": dedup_client_ref,
                "missing_uuid_rate": missing_uuid_rate,
                "timeout_after_accept_rate": timeout_after_accept_rate,
                "timeout_after_accept_ms": timeout_after_accept_ms,
                "fail_statuses": dict(fail_statuses) if fail_statuses is not None else None,
            }
        )
        if problems:
            raise ValueError(f"invalid fake provider config: {problems}")
        warm_up()  # the published description's validators, built before the first request
        self.credentials = credentials  # (api key, secret) it takes; None: any
        # The Voice API: calls made with the application's JWT, their events signed with `signature_secret`.
        self.voice = FakeVoice(voice_public_key, voice_application_id, signature_secret, seed)
        self.signature_secret = signature_secret  # signs the message-status callbacks too
        self._host = host
        self._port = port
        self._seed = seed
        self._lock = threading.Lock()
        self._config = ProviderConfig(**changes)
        self._bucket = TokenBucket(self._config.rate_limit_per_second)
        self._random = random.Random(seed)
        self._messages: list[Json] = []
        self._uuid_by_client_ref: dict[str, str] = {}  # first recorded uuid of each client_ref
        self._sent_to_text: set[tuple[str, str]] = set()
        self._recipients: set[str] = set()
        self._counters = initial_counters()
        self._script_used: Counter[str] = Counter()  # how much of each number's script was answered
        self._closing = threading.Event()  # set by stop(): held answers stop waiting
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._serving = False
        # Callbacks are posted in lanes, as Vonage posts them concurrently: a message's status callbacks all
        # in one lane (in order), inbound messages in a lane of their own (a STOP never waits behind receipts).
        self._webhooks: list[queue.Queue[tuple[str, Json] | None]] = [queue.Queue() for _ in range(1 + STATUS_LANES)]
        self._inbound_sent: dict[str, tuple[str, Json]] = {}
        # (business number, person) -> when the person last messaged the number on WhatsApp (numbers without '+').
        self._last_inbound: dict[tuple[str, str], float] = {}
        self._webhook_threads: list[threading.Thread] = []

    # --- lifecycle ------------------------------------------------------------------------------------

    def bind(self) -> str:
        """Bind the listening socket (idempotent) and return the base URL, without serving yet."""
        with self._lock:
            if self._server is None:
                self._server = _Server((self._host, self._port), self)
                self._closing.clear()
            if not self._webhook_threads:
                self._webhook_threads = [
                    threading.Thread(
                        target=self._deliver_webhooks, args=(lane,), name=f"fake-provider-webhooks-{i}", daemon=True
                    )
                    for i, lane in enumerate(self._webhooks)
                ]
                for thread in self._webhook_threads:
                    thread.start()
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
            server, thread, webhook_threads = self._server, self._thread, self._webhook_threads
            serving = self._serving
            self._server = self._thread = None
            self._webhook_threads = []
            self._serving = False
        self._closing.set()
        self.voice.stop()
        for lane in self._webhooks[: len(webhook_threads)]:
            lane.put(None)
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
        """Copies of the recorded messages, oldest first, duplicates included (``"duplicate": true``)."""
        with self._lock:
            return [dict(message) for message in self._messages]

    def stats(self) -> Json:
        """Counters: ``accepted``, ``unique_recipients``, ``requests``, ``duplicates``, ``throttled``,
        ``transient_failures``, ``missing_uuid``, ``timed_out_after_accept``, ``failed_by_status``, ``in_flight``
        and ``peak_in_flight`` (send requests being answered now, and the most at once)."""
        with self._lock:
            counters = {**self._counters, "failed_by_status": dict(self._counters["failed_by_status"])}
            return {"accepted": len(self._messages), "unique_recipients": len(self._recipients), **counters}

    def config(self) -> Json:
        with self._lock:
            return asdict(self._config)

    def configure(self, **changes: Any) -> Json:
        """Change any of the config fields at runtime; answers the resulting config."""
        config, problems = self._apply_config(changes)
        if problems:
            raise ValueError(f"invalid fake provider config: {problems}")
        return config

    def reset(self) -> None:
        """Forget recorded messages and counters, refill the bucket and reseed the random source."""
        with self._lock:
            self._messages.clear()
            self._uuid_by_client_ref.clear()
            self._sent_to_text.clear()
            self._recipients.clear()
            self._last_inbound.clear()
            answering = self._counters["in_flight"]  # requests under way still leave
            self._counters = {**initial_counters(), "in_flight": answering, "peak_in_flight": answering}
            self._script_used.clear()
            self._bucket = TokenBucket(self._config.rate_limit_per_second)
            self._random = random.Random(self._seed)
        self.voice.reset()

    # --- request-side state changes (used by the handler) ---------------------------------------------

    def _apply_config(self, body: Any) -> tuple[Json, list[Json]]:
        """Validate ``body`` against the current config and apply it whole, or not at all."""
        with self._lock:
            parsed, problems = parse_config(body, self._config)
            if problems:
                return asdict(self._config), problems
            for name, value in parsed.items():
                setattr(self._config, name, value)
            if "scripted_by_number" in parsed:
                self._script_used.clear()
            if "rate_limit_per_second" in parsed:
                self._bucket = TokenBucket(self._config.rate_limit_per_second)
            return asdict(self._config), []

    def _hold(self, seconds: float) -> None:
        """Wait without the lock; ``stop()`` cuts the wait short."""
        self._closing.wait(seconds)

    def _enter(self) -> None:
        with self._lock:
            self._counters["in_flight"] += 1
            self._counters["peak_in_flight"] = max(self._counters["peak_in_flight"], self._counters["in_flight"])

    def _leave(self) -> None:
        with self._lock:
            self._counters["in_flight"] -= 1

    def _count(self, counter: str) -> None:
        with self._lock:
            self._counters[counter] += 1

    def _take_token(self) -> bool:
        with self._lock:
            if self._bucket.take():
                return True
            self._counters["throttled"] += 1
            return False

    def _scripted(self, to: str) -> int | None:
        """The next status of this number's script (the lock held), or None once it is used up."""
        script = self._config.scripted_by_number[to]
        used = self._script_used[to]
        if used >= len(script):
            return None
        self._script_used[to] += 1
        return script[used]

    def _accept(self, body: Json) -> _Answer:
        """Draw a scripted failure, else record the send (or replay it, with ``dedup_client_ref``) and draw
        how its answer goes wrong, if at all."""
        with self._lock:
            config = self._config
            if _needs_window(body) and not self._in_window(body):
                self._counters["outside_window"] += 1
                detail = (
                    f"The message could not be sent: free-form {body['channel']} messages may be sent only within 24 "
                    "hours of the user's last message; send an approved template (WhatsApp) or a tagged message "
                    "(Messenger `message_tag`) instead."
                )
                return _Answer(
                    422,
                    _problem("messages-olympus", "Outside of the allowed window", detail)
                    | {"type": "https://developer.nexmo.com/api-errors/messages-olympus#1340"},
                )
            status = self._scripted(body["to"]) if body["to"] in config.scripted_by_number else None
            if status is None and config.balance_messages is not None and config.balance_messages <= 0:
                status = 402
            if status is None:
                status = draw_failure(config, self._random)
            if status is not None and status != 202:
                self._counters["failed_by_status"][str(status)] += 1
                if status == 503:
                    self._counters["transient_failures"] += 1
                payload, headers = failure_answer(status)
                return _Answer(status, payload, headers)
            client_ref = body.get("client_ref")
            if client_ref is not None:
                duplicate = client_ref in self._uuid_by_client_ref
            else:
                duplicate = (body["to"], _content(body)) in self._sent_to_text
            if duplicate:
                self._counters["duplicates"] += 1
                if client_ref is not None and config.dedup_client_ref:
                    return _Answer(202, {"message_uuid": self._uuid_by_client_ref[client_ref]})
            fault = draw_answer_fault(config, self._random)
            message = {
                "message_uuid": str(uuid.uuid4()),
                "to": body["to"],
                "from": body["from"],
                "channel": body["channel"],
                "text": _content(body),
                "message_type": body["message_type"],
                "category": (body.get("viber_service") or {}).get("category"),  # Viber's tag, as sent
                "options": body.get(_OPTIONS.get(body["channel"], "")),  # the channel's own object, as sent
                "client_ref": client_ref,
                "accepted_at": time.time(),
                "duplicate": duplicate,
                "fault": fault,
            }
            self._messages.append(message)
            if config.balance_messages is not None:
                config.balance_messages -= 1
            self._recipients.add(body["to"])
            self._sent_to_text.add((body["to"], _content(body)))
            if client_ref is not None:
                self._uuid_by_client_ref.setdefault(client_ref, message["message_uuid"])
            webhook_url = config.status_webhook_url
            hold_seconds = config.timeout_after_accept_ms / 1000
            if fault == MISSING_UUID:
                self._counters["missing_uuid"] += 1
            elif fault == TIMEOUT_AFTER_ACCEPT:
                self._counters["timed_out_after_accept"] += 1
        if webhook_url:
            ending = config.receipts_by_number.get(body["to"], "delivered")
            for callback in self._status_callbacks(message, ending):
                self._webhooks[1 + hash(message["message_uuid"]) % STATUS_LANES].put((webhook_url, callback))
        if fault == MISSING_UUID:
            return _Answer(200, {})
        answer = _Answer(202, {"message_uuid": message["message_uuid"]})
        if fault == TIMEOUT_AFTER_ACCEPT:
            answer.hold_seconds = hold_seconds
        return answer

    def _in_window(self, body: Json) -> bool:
        """Whether the send's recipient messaged its sender on WhatsApp in the last 24 hours (the lock held)."""
        last = self._last_inbound.get((str(body["from"]), str(body["to"])))
        return last is not None and time.time() - last < WHATSAPP_WINDOW_SECONDS

    def inbound(self, sender: str, to: str, text: str, channel: str = "sms", at: float | None = None) -> str:
        """A recipient's message to one of the account's numbers, as the Messages API posts it to the
        application's inbound URL (numbers without '+'); its message_uuid. `at`: when it was sent (default
        now; an earlier one plays a message of the past, e.g. one whose WhatsApp window has closed)."""
        at = time.time() if at is None else at
        with self._lock:
            url = self._config.inbound_webhook_url
            self._counters["inbound"] += 1
            if url and channel in ("whatsapp", "messenger"):  # the person's 24-hour window with this number opens
                key = (to.removeprefix("+"), sender.removeprefix("+"))
                self._last_inbound[key] = max(at, self._last_inbound.get(key, at))
        if not url:
            raise ValueError("no inbound_webhook_url is configured")
        message: Json = {
            "channel": channel,
            "message_uuid": str(uuid.uuid4()),
            "to": to.removeprefix("+"),
            "from": sender.removeprefix("+"),
            "timestamp": _iso_utc(at),
            "message_type": "text",
            "text": text,
        }
        if channel == "sms":
            message["sms"] = {"keyword": (text.split() or [""])[0].upper(), "num_messages": "1"}
        self._inbound_sent[str(message["message_uuid"])] = (url, message)
        self._webhooks[0].put((url, message))
        return str(message["message_uuid"])

    def resend_inbound(self, message_uuid: str) -> None:
        """Post an inbound message again as it was (its uuid and body), freshly signed: Vonage delivers
        webhooks at least once."""
        with self._lock:
            url, message = self._inbound_sent[message_uuid]
        self._webhooks[0].put((url, message))

    def inbound_request(self, body: Any) -> tuple[int, Json]:
        """POST /_fake/inbound: `from`, `to`, `text` and optionally `channel` (sms, whatsapp, messenger)."""
        fields = body if isinstance(body, dict) else {}
        wrong = [
            {"name": name, "reason": "required, a string"}
            for name in ("from", "to", "text")
            if not isinstance(fields.get(name), str) or not fields.get(name)
        ]
        if fields.get("channel", "sms") not in ("sms", "whatsapp", "messenger"):
            wrong.append({"name": "channel", "reason": "sms, whatsapp or messenger"})
        at = fields.get("at")
        if at is not None and (isinstance(at, bool) or not isinstance(at, int | float)):
            wrong.append({"name": "at", "reason": "epoch seconds, a number"})
        if wrong:
            detail = "The inbound request contained invalid parameters."
            return 422, _problem("invalid-params", "Invalid params", detail, invalid_parameters=wrong)
        try:
            sent = self.inbound(fields["from"], fields["to"], fields["text"], fields.get("channel", "sms"), at)
        except ValueError as exc:
            return 409, _problem("no-inbound-url", "No inbound URL", str(exc))
        return 202, {"message_uuid": sent}

    @staticmethod
    def _status_callbacks(message: Json, ending: str) -> list[Json]:
        """The message-status callbacks of an accepted message, in order: submitted, then how it ended
        (delivered, rejected, undeliverable; none for `submitted`: a carrier that never reports), then read
        for a delivered WhatsApp, Viber or Messenger message."""
        statuses = (
            ["submitted"]
            + ([ending] if ending != "submitted" else [])
            + (["read"] if ending == "delivered" and message["channel"] in _READ_CHANNELS else [])
        )
        callbacks = []
        for status in statuses:
            callback = {
                "message_uuid": message["message_uuid"],
                "to": message["to"],
                "from": message["from"],
                "timestamp": _iso_utc(time.time()),
                "status": status,
                "channel": message["channel"],
            }
            if status in ("rejected", "undeliverable"):
                callback["error"] = {
                    "type": "https://developer.vonage.com/api-errors/messages-olympus#1320",
                    "title": "1320",
                    "detail": "Message failed because the destination was unreachable (scripted receipt).",
                    "instance": str(uuid.uuid4()),
                }
            if message["client_ref"] is not None:
                callback["client_ref"] = message["client_ref"]
            callbacks.append(callback)
        return callbacks

    def _deliver_webhooks(self, lane: queue.Queue[tuple[str, Json] | None]) -> None:
        """Status callbacks, one at a time, each signed as Vonage signs them (HS256 with the signature
        secret, `payload_hash`) and tried again, re-signed, while the receiver answers other than 2xx or
        not at all, as Vonage retries (`WEBHOOK_RETRIES` times here, backing off from 0.2 s)."""
        while True:
            item = lane.get()
            if item is None:
                return
            url, payload = item
            body = json.dumps(payload).encode()
            for attempt in range(WEBHOOK_RETRIES + 1):
                if self._closing.is_set():
                    break
                headers = {
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {sign(body, self.signature_secret)}",
                }
                request = urllib.request.Request(url, data=body, headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
                        response.read()
                        if 200 <= response.status < 300:
                            break
                except (OSError, ValueError, http.client.HTTPException):
                    pass
                with self._lock:
                    self._counters["callbacks_retried"] += 1
                self._closing.wait(0.2 * 2**attempt)


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
    parser.add_argument("--seed", type=int, default=0, help="seed for every random draw (default: 0)")
    parser.add_argument("--api-key", default=None, help="the only API key taken (with --api-secret); default: any")
    parser.add_argument("--api-secret", default=None, help="that key's secret")
    parser.add_argument("--voice-public-key-file", default=None, help="the Vonage application's public key (PEM)")
    parser.add_argument("--voice-application-id", default=None, help="the application id its JWTs must name")
    parser.add_argument(
        "--signature-secret", default="local-signature-secret-0123456789abcdef", help="signs the calls' events"
    )
    parser.add_argument(
        "--status-webhook-url",
        default=None,
        help="POST each accepted message's status callbacks (submitted, delivered, ...) here",
    )
    parser.add_argument(
        "--inbound-webhook-url", default=None, help="POST the recipients' messages (POST /_fake/inbound) here"
    )
    add_fault_arguments(parser)
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
            status_webhook_url=args.status_webhook_url,
            inbound_webhook_url=args.inbound_webhook_url,
            credentials=(args.api_key, args.api_secret or "") if args.api_key else None,
            voice_public_key=Path(args.voice_public_key_file).read_text() if args.voice_public_key_file else None,
            voice_application_id=args.voice_application_id,
            signature_secret=args.signature_secret,
            **fault_options(args),
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
