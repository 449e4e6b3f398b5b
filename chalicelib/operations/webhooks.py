"""Webhooks to the customer (decision 41), per the Standard Webhooks specification.

- `enqueue`: a batch of events becomes one SQS message per (endpoint, event) for the account's enabled
  endpoints subscribed to the event's type (the endpoints read once per account and batch).
- `deliver`: one message: the event signed (`webhook-id` = the event's id, `webhook-timestamp`,
  `webhook-signature` with every current secret) and POSTed through the outbound guard. A 2xx is
  delivered. Anything else is tried again after a growing delay (5 s, 10 s, 20 s, ... up to SQS's 15
  minutes) until `webhook_retry_seconds` (a day) has passed since the first try, then dead-lettered. Each
  attempt replaces the delivery's log item. An endpoint failing for `webhook_disable_after_seconds` is
  disabled, and the account's other endpoints get `webhook.disabled`.
- `replay`: a logged delivery queued again, as new.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from chalicelib.channels import outbound
from chalicelib.channels.http_action import configured_guard
from chalicelib.domain.errors import NotFound
from chalicelib.observability import logger
from chalicelib.once import made_once
from chalicelib.settings import get_settings
from chalicelib.store import queue, webhooks

MAX_SQS_DELAY_SECONDS = 900


def retry_delay(attempt: int, first: float) -> int:
    """Seconds before try `attempt + 1`: `first`, doubling each try, at most SQS's 15 minutes."""
    return int(min(MAX_SQS_DELAY_SECONDS, first * 2 ** (attempt - 1)))


def _wants(endpoint: dict[str, Any], event: dict[str, Any]) -> bool:
    types = endpoint.get("event_types") or []
    return bool(endpoint.get("enabled")) and (not types or event["type"] in types)


def enqueue(account: str, events: list[dict[str, Any]], *, only: str | None = None) -> int:
    """Queue each event for each endpoint that wants it; how many deliveries were queued. With `only` (a
    reply handler's `forward`), for that endpoint alone, whatever its event types, unless it gets the event
    anyway."""
    if only is not None:
        endpoint = webhooks.get(account, only)
        listening = [endpoint] if endpoint.get("enabled") else []
        events = [event for event in events if not _wants(endpoint, event)]
    else:
        listening = webhooks.endpoints(account) if events else []
    messages = [
        (
            queue.encode(
                {"account": account, "endpoint": e["id"], "event": event, "attempt": 1, "first_at": time.time()}
            ),
            0,
        )
        for event in events
        for e in listening
        if only is not None or _wants(e, event)
    ]
    if messages:
        queue.send_messages(get_settings().webhook_queue_url, messages)
    return len(messages)


def payload(event: dict[str, Any]) -> str:
    """The request body: Standard Webhooks' `type`, `timestamp` and `data` (the event, without the account)."""
    data = {k: v for k, v in event.items() if k not in ("account", "occurred_at")}
    data["occurred_at"] = datetime.fromtimestamp(float(event["occurred_at"]), UTC).isoformat()
    return json.dumps({"type": event["type"], "timestamp": data["occurred_at"], "data": data}, default=str)


def signed_headers(endpoint: dict[str, Any], event_id: str, body: str, now: float) -> dict[str, str]:
    """Standard Webhooks headers: a `v1,` signature with each secret still in use (a rotation signs twice)."""
    moment = datetime.fromtimestamp(now, UTC)
    current = [s for s in endpoint["secrets"] if s.get("until") is None or float(s["until"]) > now]
    signatures = " ".join(Webhook(s["secret"]).sign(event_id, moment, body) for s in current)
    return {
        "Content-Type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now)),
        "webhook-signature": signatures,
    }


def deliver(message: dict[str, Any]) -> str:
    """One delivery attempt; what became of it (delivered, retrying, dead_lettered, dropped)."""
    account, event = message["account"], message["event"]
    try:
        endpoint = webhooks.get(account, message["endpoint"])
    except NotFound:  # the endpoint was deleted meanwhile
        return "dropped"
    if not endpoint.get("enabled") and not message.get("replay"):
        return "dropped"
    body, attempt, now = payload(event), int(message["attempt"]), time.time()
    status, answer = _post(endpoint, event["id"], body, now)
    if 200 <= status < 300:
        webhooks.log_attempt(account, endpoint["id"], event, body, "delivered", answer, attempt)
        if endpoint.get("failing_since"):
            webhooks.recovered(account, endpoint["id"])
        return "delivered"
    settings = get_settings()
    was_enabled = bool(endpoint.get("enabled"))
    endpoint = webhooks.failed(account, endpoint["id"], now, settings.webhook_disable_after_seconds)
    if was_enabled and not endpoint.get("enabled"):
        _tell_disabled(account, endpoint)
    if now - float(message["first_at"]) < settings.webhook_retry_seconds and endpoint.get("enabled"):
        webhooks.log_attempt(account, endpoint["id"], event, body, "retrying", answer, attempt)
        delay = retry_delay(attempt, settings.webhook_first_retry_seconds)
        queue.send_messages(settings.webhook_queue_url, [(queue.encode({**message, "attempt": attempt + 1}), delay)])
        return "retrying"
    webhooks.log_attempt(account, endpoint["id"], event, body, "dead_lettered", answer, attempt)
    queue.send_messages(settings.webhook_dead_letter_queue_url, [(queue.encode(message), 0)])
    return "dead_lettered"


def _post(endpoint: dict[str, Any], event_id: str, body: str, now: float) -> tuple[int, str]:
    """(status, what came back in a few words); status 0 when no answer came."""
    headers = signed_headers(endpoint, event_id, body, now)
    try:
        answer = outbound.call(
            _client(endpoint["url"]), configured_guard(), "POST", endpoint["url"], headers=headers,
            content=body.encode(), follow_redirects=False,
        )  # fmt: skip
    except outbound.RefusedUrl as exc:
        return 0, f"refused: {exc.reason}"
    except httpx.HTTPError as exc:
        return 0, f"no answer: {type(exc).__name__}"
    return answer.status, f"{answer.status} {answer.body[:200].decode(errors='replace')}"


def _client(url: str) -> httpx.Client:
    return _host_client(httpx.URL(url).host, get_settings().webhook_timeout_seconds)


@made_once(None)
def _host_client(host: str, timeout: float) -> httpx.Client:
    """One client per host and timeout, kept for the process (the guard pins addresses: httpx pools by
    address; and a client's TLS context is costly to make per delivery)."""
    return httpx.Client(timeout=timeout, follow_redirects=False, limits=httpx.Limits(max_connections=16))


def _tell_disabled(account: str, endpoint: dict[str, Any]) -> None:
    """The account's other endpoints hear that one was disabled (and the log says so)."""
    logger.warning("webhook disabled", extra={"account": account, "endpoint": endpoint["id"]})
    event = {
        "id": f"evt_disabled_{endpoint['id']}_{int(float(endpoint['disabled_at']))}",
        "type": "webhook.disabled",
        "occurred_at": float(endpoint["disabled_at"]),
        "account": account,
        "campaign_id": None,
        "recipient_id": None,
        "data": {"webhook_id": endpoint["id"], "url": endpoint["url"], "reason": endpoint.get("disabled_reason")},
    }
    enqueue(account, [event])


def replay(account: str, endpoint_id: str, delivery_id: str) -> dict[str, Any]:
    """Queue a logged delivery again (its event as it was), whatever became of it."""
    logged = webhooks.delivery(account, endpoint_id, delivery_id)
    sent = json.loads(logged["payload"])
    event = {
        **sent["data"],
        "occurred_at": datetime.fromisoformat(sent["data"]["occurred_at"]).timestamp(),
        "account": account,
    }
    message = {"account": account, "endpoint": endpoint_id, "event": event, "attempt": 1, "first_at": time.time()}
    queue.send_messages(get_settings().webhook_queue_url, [(queue.encode({**message, "replay": True}), 0)])
    return logged
