"""HTTP actions (decision 33): any endpoint a customer names, called once per recipient through the
outbound request guard (decision 29), with the action's own rule for what counts as success.

Like Vonage and SES, an endpoint takes no idempotency key we can rely on: a request that may have reached
it is ambiguous (`unknown`), never resent. Each request carries `Idempotency-Key` (campaign:recipient:
attempt) all the same, for endpoints that deduplicate on it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from chalicelib.channels.base import HttpRequest, OutgoingMessage
from chalicelib.channels.clients import ClientSet
from chalicelib.channels.outbound import Answer, Guard, RefusedUrl, call
from chalicelib.domain.delivery import OutcomeReason, SendOutcome
from chalicelib.domain.template import render
from chalicelib.once import MadeOnce, made_once
from chalicelib.settings import get_settings
from chalicelib.store import aws
from chalicelib.store.secrets import SecretGone, read_secret

MASK = "********"
RESPONSE_TEXT_BYTES = 4096


def http_request(action: dict[str, Any], variables: dict[str, Any]) -> HttpRequest:
    """The action rendered for one recipient (TemplateError when a part of it cannot be)."""
    body = action.get("body")
    return HttpRequest(
        method=str(action["method"]),
        url=render(str(action["url"]), variables).strip(),
        headers={name: render(str(value), variables) for name, value in (action.get("headers") or {}).items()},
        body=render(str(body), variables) if body else None,
        content_type=str(action.get("content_type") or "application/json"),
        timeout_seconds=float(action.get("timeout_seconds") or 10),
        auth={**(action.get("auth") or {"type": "none"}), "secret_name": action.get("secret_name")},
        success_statuses=tuple(int(s) for s in action.get("success_statuses") or ()),
        success_json_field=action.get("success_json_field"),
        success_json_value=action.get("success_json_value"),
        retry_statuses=tuple(int(s) for s in action.get("retry_statuses") or ()),
    )


@dataclass(frozen=True)
class Prepared:
    method: str
    url: str
    headers: dict[str, str]
    content: bytes | None
    masked: dict[str, str]  # the headers as shown back to the customer (secrets masked)


def prepare(request: HttpRequest, idempotency_key: str) -> Prepared:
    """The request with its auth applied (SecretGone when the action's secret cannot be read)."""
    content = request.body.encode() if request.body is not None else None
    headers = {**request.headers, "Idempotency-Key": idempotency_key, "User-Agent": "bulk-campaign-api"}
    if content is not None:
        headers["Content-Type"] = request.content_type
    masked = dict(headers)
    kind = request.auth.get("type", "none")
    if kind != "none":
        name = request.auth.get("secret_name")
        if not name:
            raise SecretGone("the action has no secret")
        secret = read_secret(str(name))
        if kind == "basic":
            pair = f"{request.auth['username']}:{secret}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
            masked["Authorization"] = f"Basic {MASK}"
        elif kind == "bearer":
            headers["Authorization"] = f"Bearer {secret}"
            masked["Authorization"] = f"Bearer {MASK}"
        else:  # hmac: the receiver recomputes it over the timestamp and the exact bytes it got
            stamp = str(int(time.time()))
            digest = hmac.new(secret.encode(), stamp.encode() + b"." + (content or b""), hashlib.sha256).hexdigest()
            header = str(request.auth.get("signature_header") or "X-Signature")
            headers[header] = masked[header] = f"t={stamp},v1={digest}"  # a signature is no secret
    return Prepared(request.method, request.url, headers, content, masked)


def judge(request: HttpRequest, answer: Answer) -> SendOutcome:
    """What the action's rules make of an answer."""
    status = answer.status
    detail = f"the endpoint answered {status}: {_text(answer.body)[:200]}".strip()
    succeeded = status in request.success_statuses if request.success_statuses else 200 <= status < 300
    if succeeded:
        if request.success_json_field is None:
            return SendOutcome.accepted(_answer_id(answer))
        found = _field(answer, request.success_json_field)
        wanted = request.success_json_value
        if found == wanted and isinstance(found, bool) == isinstance(wanted, bool):  # true is not 1
            return SendOutcome.accepted(_answer_id(answer))
        return SendOutcome.permanent(
            f"the endpoint answered {status} but {request.success_json_field} is {json.dumps(found)}, "
            f"not {json.dumps(request.success_json_value)}"
        )
    if status in request.retry_statuses:
        reason = OutcomeReason.THROTTLED if status == 429 else OutcomeReason.PROVIDER_ERROR
        return SendOutcome.transient(detail, retry_after_seconds=_retry_after(answer), reason=reason)
    if status in (401, 403):  # the action's credentials: every recipient would be refused alike
        return SendOutcome.account(f"the endpoint refused the action's credentials: {detail}")
    return SendOutcome.permanent(detail)


class HttpAction:
    CHANNELS = frozenset({"http"})
    honours_idempotency_key = False
    asynchronous_outcome = False
    max_text_chars: int | None = None

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        # One set per host (the guard pins addresses: httpx pools by address) and timeout.
        self._clients: MadeOnce[[str, float], ClientSet] = MadeOnce(_client_set, None)

    def send(self, message: OutgoingMessage) -> SendOutcome:
        if message.http is None:
            return SendOutcome.permanent("an http campaign needs its action")
        outcome, _ = self.request(message.http, message.idempotency_key)
        return outcome

    def request(self, request: HttpRequest, idempotency_key: str) -> tuple[SendOutcome, Answer | None]:
        """Make the request; its outcome, and the answer if one came."""
        try:
            prepared = prepare(request, idempotency_key)
            answer = call(
                self._client(request),
                self.guard,
                prepared.method,
                prepared.url,
                headers=prepared.headers,
                content=prepared.content,
                # A redirect is the endpoint's answer, judged by the action's rules: following it would take
                # the action's credentials to wherever the endpoint points.
                follow_redirects=False,
            )
        except RefusedUrl as exc:
            return SendOutcome.permanent(f"the action's URL is refused: {exc}"), None
        except SecretGone as exc:
            return SendOutcome.account(str(exc)), None
        except (ValueError, httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
            # Nothing left this process: a rendered header that is not ASCII or holds a line break, a URL
            # that cannot be a request. That recipient's request cannot be made, whatever is tried again.
            return SendOutcome.permanent(f"the request cannot be made: {type(exc).__name__}: {exc}"[:500]), None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            error = f"endpoint unreachable: {type(exc).__name__}"
            return SendOutcome.transient(error, reason=OutcomeReason.UNREACHABLE), None
        except httpx.TransportError as exc:
            return SendOutcome.ambiguous(f"no answer from the endpoint: {type(exc).__name__}"), None
        return judge(request, answer), answer

    def _client(self, request: HttpRequest) -> httpx.Client:
        return self._clients(httpx.URL(request.url).host, request.timeout_seconds).next()


def _client_set(host: str, timeout: float) -> ClientSet:
    return ClientSet(
        lambda limits, verify: httpx.Client(timeout=timeout, follow_redirects=False, limits=limits, verify=verify),
        connections=64,
    )


def _text(body: bytes) -> str:
    return body[:RESPONSE_TEXT_BYTES].decode(errors="replace")


def response_text(answer: Answer) -> str:
    return _text(answer.body)


def _field(answer: Answer, path: str) -> Any:
    try:
        found: Any = answer.json()
    except ValueError:
        return None
    for part in path.split("."):
        if isinstance(found, dict):
            found = found.get(part)
        elif isinstance(found, list) and part.isdigit() and int(part) < len(found):
            found = found[int(part)]
        else:
            return None
    return found


def _answer_id(answer: Answer) -> str | None:
    """The endpoint's id for what it did, if its JSON answer names one (`id`)."""
    found = _field(answer, "id")
    return str(found)[:200] if isinstance(found, str | int) and found != "" else None


def _retry_after(answer: Answer) -> float | None:
    try:
        return float(answer.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def configured_guard() -> Guard:
    """The outbound guard as the stage's settings configure it (its exceptions: decision 29)."""
    s = get_settings()
    hosts = frozenset(h.strip().lower() for h in s.outbound_allowed_hosts.split(",") if h.strip())
    return Guard(allow_http=s.outbound_allow_http, allowed_hosts=hosts)


@made_once(1)
def http_action() -> HttpAction:
    return HttpAction(configured_guard())


aws.on_reset(http_action.cache_clear)
