"""The Voice API half of the fake provider (``infra.local.fake_provider``): ``POST /v1/calls`` as Vonage
answers it, and the calls' events posted back as Vonage posts them.

No kinder than Vonage: a request needs the application's JWT (RS256, checked against the application's
public key, with its ``application_id``), the body must be a ``CreateCallRequestNcco`` of the published
Voice API 1.3.10 description (422 with Vonage's problem body otherwise), and a repeated request places a
second call (Vonage deduplicates nothing). Each call plays one scripted outcome:

* ``completed``: started, ringing, answered, completed (with duration and price)
* ``busy``, ``timeout``, ``unanswered``: started, ringing, then that status
* ``rejected``, ``failed``: started, then that status
* ``machine``: started, ringing, answered, machine, completed (the receiver decides what a machine means)
* ``silent``: no event at all (a call the provider never reports)

An answered call (completed, machine) whose NCCO has a ``record`` action then posts, as Vonage does, the
recording (``recording_url``, ``recording_uuid``, ``size``, ...) to the action's ``eventUrl``, and when the
action asks for a ``transcription``, the transcription (``type: transcription``, ``transcription_url``) to its
``eventUrl``, signed like the call's events.

Outcomes come from ``scripted_by_number`` (a number's calls take its list in turn), else from the weighted
``outcomes`` mix drawn from the provider's seeded random source. Events go to the call's ``event_url``,
each signed as Vonage signs them (``Authorization: Bearer``, HS256 with the signature secret, the body's
SHA-256 as ``payload_hash``, a fresh ``jti``); an answer other than 2xx, or none, is retried with backoff
(``retries`` times, the first after ``retry_base_ms``), re-signed each time, as Vonage retries callbacks.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import queue
import random
import threading
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import jwt

from infra.local.fake_provider_faults import problem
from infra.local.vonage_contract import call_request_problems

Json = dict[str, Any]

OUTCOMES = ("completed", "busy", "timeout", "unanswered", "rejected", "failed", "machine", "silent")
EVENTS = {
    "completed": ("started", "ringing", "answered", "completed"),
    "busy": ("started", "ringing", "busy"),
    "timeout": ("started", "ringing", "timeout"),
    "unanswered": ("started", "ringing", "unanswered"),
    "rejected": ("started", "rejected"),
    "failed": ("started", "failed"),
    "machine": ("started", "ringing", "answered", "machine", "completed"),
    "silent": (),
}
WEBHOOK_TIMEOUT_SECONDS = 5.0
# Answered calls: their `record` actions post a recording (and a transcription when asked) after the call.
ANSWERED = frozenset({"completed", "machine"})
# Where Vonage keeps recordings and transcriptions (fetched with the application's JWT).
FILES_URL = "https://api.nexmo.com/v1/files"


@dataclass
class VoiceConfig:
    outcomes: dict[str, float] = field(default_factory=lambda: {"completed": 1.0})
    scripted_by_number: dict[str, list[str]] = field(default_factory=dict)
    event_delay_ms: int = 10  # between a call's events
    call_seconds: int = 12  # an answered call's duration
    retries: int = 6  # of an event the receiver did not take
    retry_base_ms: int = 200  # the first retry's wait, doubled each time


class FakeVoice:
    def __init__(
        self, public_key: str | None, application_id: str | None, signature_secret: str, seed: int = 0
    ) -> None:
        self.public_key = public_key
        self.application_id = application_id
        self.signature_secret = signature_secret
        self.config = VoiceConfig()
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._calls: list[Json] = []
        self._by_uuid: dict[str, Json] = {}
        self._script_used: dict[str, int] = {}
        self._counters = {"requests": 0, "refused": 0, "events_posted": 0, "events_refused": 0, "events_lost": 0}
        self._events: queue.Queue[tuple[float, Json, str, int] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    # --- control ------------------------------------------------------------------------------------

    def configure(self, body: Json) -> list[Json]:
        """Apply config changes whole, or none (the problems found)."""
        problems: list[Json] = []
        changes = dict(body or {})
        for name, value in changes.items():
            if name not in VoiceConfig.__dataclass_fields__:
                problems.append({"name": name, "reason": "not a voice config field"})
            elif name == "outcomes" and (
                not isinstance(value, dict) or set(value) - set(OUTCOMES) or not all(w >= 0 for w in value.values())
            ):
                problems.append({"name": name, "reason": f"weights (>= 0) of {list(OUTCOMES)}"})
            elif name == "scripted_by_number" and (
                not isinstance(value, dict) or any(set(v) - set(OUTCOMES) for v in value.values())
            ):
                problems.append({"name": name, "reason": f"number -> list of {list(OUTCOMES)}"})
        if problems:
            return problems
        with self._lock:
            for name, value in changes.items():
                setattr(self.config, name, value)
            if "scripted_by_number" in changes:
                self._script_used.clear()
        return []

    def calls(self) -> list[Json]:
        with self._lock:
            return [dict(call) for call in self._calls]

    def stats(self) -> Json:
        with self._lock:
            by_outcome: dict[str, int] = {}
            for call in self._calls:
                by_outcome[call["outcome"]] = by_outcome.get(call["outcome"], 0) + 1
            return {"placed": len(self._calls), "by_outcome": by_outcome, **self._counters}

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._by_uuid.clear()
            self._script_used.clear()
            self._counters = dict.fromkeys(self._counters, 0)

    def stop(self) -> None:
        if self._thread is not None:
            self._events.put(None)
            self._thread = None

    # --- POST /v1/calls -----------------------------------------------------------------------------

    def create_call(self, authorization: str | None, body: Any) -> tuple[int, Json]:
        with self._lock:
            self._counters["requests"] += 1
        refusal = self._refusal(authorization)
        if refusal:
            with self._lock:
                self._counters["refused"] += 1
            return 401, problem("unauthorized", "Unauthorized", refusal)
        problems = call_request_problems(body)
        if problems:
            detail = "The request failed due to validation errors."
            invalid = [{"name": text.split(":", 1)[0], "reason": text} for text in problems[:5]]
            return 422, problem("invalid-params", "Invalid params", detail, invalid_parameters=invalid)
        number = str(body["to"][0].get("number", ""))
        with self._lock:
            outcome = self._outcome(number)
            call = {
                "uuid": str(uuid.uuid4()),
                "conversation_uuid": f"CON-{uuid.uuid4()}",
                "to": number,
                "from": body["from"]["number"],
                "ncco": body["ncco"],
                "event_url": body["event_url"][0],
                "machine_detection": body.get("machine_detection"),
                "outcome": outcome,
                "placed_at": time.time(),
            }
            self._calls.append(call)
            self._by_uuid[call["uuid"]] = call
            self._start_thread()
            delay = self.config.event_delay_ms / 1000
        steps = len(EVENTS[outcome])
        for n, status in enumerate(EVENTS[outcome]):
            self._events.put((time.monotonic() + delay * (n + 1), self._event(call, status), call["event_url"], 0))
        if outcome in ANSWERED:  # what its `record` actions recorded, once the call is over
            for n, (event, url) in enumerate(self._recordings(call)):
                self._events.put((time.monotonic() + delay * (steps + n + 1), event, url, 0))
        return 201, {
            "uuid": call["uuid"],
            "status": "started",
            "direction": "outbound",
            "conversation_uuid": call["conversation_uuid"],
        }

    def _refusal(self, authorization: str | None) -> str | None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "You did not provide a JWT (the Voice API takes an application's JWT, not Basic)."
        if not self.public_key:
            return "No application is set up on this fake provider (pass its public key)."
        try:
            claims = jwt.decode(token, self.public_key, algorithms=["RS256"], options={"require": ["iat", "jti"]})
        except jwt.PyJWTError as exc:
            return f"Invalid Token: {exc}"
        if self.application_id and claims.get("application_id") != self.application_id:
            return "The token is not for this application."
        return None

    def _outcome(self, number: str) -> str:
        script = self.config.scripted_by_number.get(number)
        used = self._script_used.get(number, 0)
        if script and used < len(script):
            self._script_used[number] = used + 1
            return script[used]
        weights = self.config.outcomes
        total = sum(weights.values())
        draw = self._random.random() * total
        for name in OUTCOMES:
            draw -= weights.get(name, 0)
            if draw < 0:
                return name
        return "completed"

    def _event(self, call: Json, status: str) -> Json:
        event = {
            "uuid": call["uuid"],
            "conversation_uuid": call["conversation_uuid"],
            "status": status,
            "direction": "outbound",
            "from": call["from"],
            "to": call["to"],
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        }
        if status == "completed":
            seconds = self.config.call_seconds
            event.update({"duration": str(seconds), "rate": "0.01000000", "price": f"{seconds * 0.01 / 60:.8f}"})
            event.update({"network": "310260", "start_time": event["timestamp"], "end_time": event["timestamp"]})
        return event

    def _recordings(self, call: Json) -> list[tuple[Json, str]]:
        """The events of an answered call's `record` actions, as Vonage posts them when the call is over: the
        recording to the action's `eventUrl`, then, when it asked for one, the transcription to the
        transcription's `eventUrl` (an action without an `eventUrl` posts to the call's event URL)."""
        found: list[tuple[Json, str]] = []
        for action in call["ncco"]:
            if action.get("action") != "record":
                continue
            recording_uuid = str(uuid.uuid4())
            fmt = action.get("format") or "mp3"
            recording = {
                "start_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(call["placed_at"])),
                "recording_url": f"{FILES_URL}/{uuid.uuid4()}",
                "size": self.config.call_seconds * (16_000 if fmt == "mp3" else 128_000),
                "recording_uuid": recording_uuid,
                "end_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "conversation_uuid": call["conversation_uuid"],
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            }
            found.append((recording, (action.get("eventUrl") or [call["event_url"]])[0]))
            transcription = action.get("transcription")
            if isinstance(transcription, dict):
                transcript = {
                    "conversation_uuid": call["conversation_uuid"],
                    "type": "transcription",
                    "recording_uuid": recording_uuid,
                    "status": "completed",
                    "transcription_url": f"{FILES_URL}/{uuid.uuid4()}",
                }
                found.append((transcript, (transcription.get("eventUrl") or [call["event_url"]])[0]))
        return found

    # --- events -------------------------------------------------------------------------------------

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._post_events, name="fake-voice-events", daemon=True)
            self._thread.start()

    def _post_events(self) -> None:
        pending: list[tuple[float, Json, str, int]] = []
        while True:
            wait = max(0.0, min((due for due, *_ in pending), default=time.monotonic() + 0.2) - time.monotonic())
            with contextlib.suppress(queue.Empty):
                item = self._events.get(timeout=wait)
                if item is None:
                    return
                pending.append(item)
            now = time.monotonic()
            due = sorted((p for p in pending if p[0] <= now), key=lambda p: p[0])
            pending = [p for p in pending if p[0] > now]
            for _, event, url, tries in due:
                status = self._post(url, event)
                with self._lock:
                    if 200 <= status < 300:
                        self._counters["events_posted"] += 1
                        if "uuid" in event and event["status"] == EVENTS[self._by_uuid[event["uuid"]]["outcome"]][-1]:
                            self._by_uuid[event["uuid"]]["ended_at"] = time.time()  # its last event taken
                        continue
                    self._counters["events_refused"] += 1
                    if tries >= self.config.retries:
                        self._counters["events_lost"] += 1
                        continue
                    later = time.monotonic() + self.config.retry_base_ms / 1000 * 2**tries
                pending.append((later, event, url, tries + 1))

    def _post(self, url: str, event: Json) -> int:
        body = json.dumps(event).encode()
        token = sign(body, self.signature_secret, application_id=self.application_id or "")
        request = urllib.request.Request(
            url,
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except (OSError, ValueError, http.client.HTTPException):
            return 0


def sign(body: bytes, secret: str, now: float | None = None, **claims: Any) -> str:
    """A callback's signature as Vonage makes it: HS256 over iat, a fresh jti and the body's SHA-256."""
    issued = int(time.time() if now is None else now)
    payload = {"iat": issued, "jti": str(uuid.uuid4()), "payload_hash": hashlib.sha256(body).hexdigest(), **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


def config_dict(voice: FakeVoice) -> Json:
    return asdict(voice.config)
