"""Vonage's published OpenAPI descriptions (kept in `contracts/`, as published in the APIs-guru
openapi-directory) turned into JSON Schema validators: the fake provider refuses what they refuse, and the
contract tests hold the adapters' requests and the fake's answers and callbacks to them.

Five corrections are made to the published Messages API 1.4.0 text, and one to Voice API 1.3.10, and only these:
- `baseMessageType` lists `message` as required, a leftover of the v0.1 request format (`{to, from,
  message: {content}}`); the v1 API takes no `message` field (its own examples, and every Vonage SDK, send
  none), so every valid request would fail it.
- `ErrorUnauthorizedMissingCredentials` requires `details`, a typo: its properties (like every other
  error's) name `detail`.
- The answers' top-level `oneOf` (202: the same `{message_uuid}` object once per channel; 401 and 422:
  error objects that differ only in their examples) can match no answer exactly once, so they are read as
  `anyOf`: an answer must still be one of the described objects.
- `messageStatusBase`'s status enum lacks `read`, which the WhatsApp, Viber and Messenger status callbacks
  add in their own part of the same `allOf`: no `read` callback could pass both. The base takes `read` (an
  SMS `read`, which Vonage never sends, would then pass too).
- `messageStatusMessenger` is `allOf` the base (whose `to` is a `ToNumber`, 7 to 15 characters) and its own
  part (whose `to` is a `ToId`, 1 to 50): a page-scoped id longer than 15 digits (commonly 16 or 17)
  could pass only one. The Messenger status takes the base with its own `to` (a `ToId`); the other channels'
  statuses keep the base as published.
- Voice: a create-call request's `to` items are `oneOf` phone, SIP, websocket and VBC endpoints, but the SIP
  endpoint requires only a `type` (no enum), so every phone endpoint is also a SIP one and no request passes.
  They are read as `anyOf`: an endpoint must still be one of the described ones.
"""

from __future__ import annotations

import copy
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError, best_match

CONTRACTS = Path(__file__).parent / "contracts"
MESSAGES = CONTRACTS / "vonage-messages-1.4.0.yaml"
VOICE = CONTRACTS / "vonage-voice-1.3.10.yaml"

_BUILDING = threading.Lock()
_REQUIRED = re.compile(r"^'([^']+)' is a required property$")
# The request's top-level alternatives are titled by channel; a body is held to its channel's alternative
# (the channel enums make the alternatives exclusive, so this is the published oneOf, only faster).
_TITLES = {"SMS": "sms", "MMS": "mms", "WhatsApp": "whatsapp", "Messenger": "messenger", "Viber": "viber_service"}


@lru_cache(maxsize=2)
def document(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    if path == MESSAGES:
        schemas = loaded["components"]["schemas"]
        base = schemas["baseMessageType"]
        base["required"] = [name for name in base["required"] if name != "message"]
        unauthorized = schemas["ErrorUnauthorizedMissingCredentials"]
        unauthorized["required"] = ["detail" if name == "details" else name for name in unauthorized["required"]]
        statuses = schemas["messageStatusBase"]["properties"]["status"]["enum"]
        statuses.append("read")
        base_for_ids = copy.deepcopy(schemas["messageStatusBase"])
        base_for_ids["properties"]["to"] = {"$ref": "#/components/schemas/ToId"}
        schemas["messageStatusBaseForIds"] = base_for_ids
        schemas["messageStatusMessenger"]["allOf"][0] = {"$ref": "#/components/schemas/messageStatusBaseForIds"}
    if path == VOICE:
        to = loaded["components"]["schemas"]["CreateCallRequestBase"]["properties"]["to"]["items"]
        to["anyOf"] = to.pop("oneOf")
    return loaded


def _validator(path: Path, schema: dict[str, Any]) -> Draft4Validator:
    """A validator for `schema` whose `#/components/...` references resolve in the document."""
    return Draft4Validator({**copy.deepcopy(schema), "components": document(path)["components"]})


def problems(validator: Draft4Validator, instance: Any) -> list[str]:
    """What is wrong with `instance`, most relevant first ([] when it conforms)."""
    errors = list(validator.iter_errors(instance))
    if not errors:
        return []
    first = _nearest(best_match(errors))
    path = [str(p) for p in first.absolute_path]
    missing = _REQUIRED.match(first.message) if first.validator == "required" else None
    if missing:  # a missing property is named by its own path
        path.append(missing.group(1))
    where = "/".join(path) or "body"
    return [f"{where}: {first.message[:300]}"] + [e.message[:300] for e in errors if e is not first]


def _nearest(error: ValidationError) -> ValidationError:
    """For "not valid under any of the given schemas", the error of the alternative that came nearest (the
    one with the fewest errors): a WhatsApp template without `locale` says so, not that it is no image."""
    if not error.context:
        return error
    by_alternative: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        by_alternative.setdefault(sub.relative_schema_path[0], []).append(sub)
    nearest = min(by_alternative.values(), key=len)
    return _nearest(best_match(nearest))


@lru_cache(maxsize=1)
def _send() -> dict[str, Any]:
    operation: dict[str, Any] = document(MESSAGES)["paths"]["/"]["post"]
    return operation


@lru_cache(maxsize=8)
def _request_validator(channel: str) -> Draft4Validator | None:
    schema = _send()["requestBody"]["content"]["application/json"]["schema"]
    for alternative in schema["oneOf"]:
        if _TITLES.get(alternative.get("title", "")) == channel:
            return _validator(MESSAGES, alternative)
    return None


def warm_up() -> None:
    """Load the description and build the send validators now: a server doing it on its first requests,
    under load, answers them late (seen: 40 concurrent first sends timing out at 1 s)."""
    with _BUILDING:
        for channel in _TITLES.values():
            _request_validator(channel)
        request_problems({"channel": "sms", "to": "14155550001", "from": "Acme", "message_type": "text", "text": "x"})
        call_request_problems({"to": [{"type": "phone", "number": "14155550001"}]})


def request_problems(body: Any) -> list[str]:
    """Why the Messages API would refuse this send request ([] when the description accepts it)."""
    channel = body.get("channel") if isinstance(body, dict) else None
    validator = _request_validator(str(channel))
    if validator is None:
        return [f"channel: {channel!r} is not one of {sorted(_TITLES.values())}"]
    return problems(validator, body)


@lru_cache(maxsize=16)
def response_validator(status: int) -> Draft4Validator | None:
    """The described answer for `status`, or None when the description has no answer with that status."""
    answer = _send()["responses"].get(str(status))
    if answer is None:
        return None
    schema = dict(answer["content"]["application/json"]["schema"])
    if "oneOf" in schema:
        schema["anyOf"] = schema.pop("oneOf")
    return _validator(MESSAGES, schema)


@lru_cache(maxsize=1)
def status_webhook_validator() -> Draft4Validator:
    """The message-status callback the Messages API posts to the application's status URL."""
    callback = _send()["callbacks"]["message-status"]
    (operation,) = callback.values()
    return _validator(MESSAGES, operation["post"]["requestBody"]["content"]["application/json"]["schema"])


@lru_cache(maxsize=1)
def inbound_webhook_validator() -> Draft4Validator:
    """The inbound message the Messages API posts to the application's inbound URL."""
    (operation,) = document(MESSAGES)["x-webhooks"]["inbound-message"].values()
    return _validator(MESSAGES, operation["post"]["requestBody"]["content"]["application/json"]["schema"])


@lru_cache(maxsize=1)
def _call_request_validator() -> Draft4Validator:
    """A create-call request with an NCCO (the description's `CreateCallRequestNcco`: the form dispatch sends)."""
    return _validator(VOICE, {"$ref": "#/components/schemas/CreateCallRequestNcco"})


def call_request_problems(body: Any) -> list[str]:
    """Why the Voice API would refuse this create-call request ([] when the description accepts it)."""
    return problems(_call_request_validator(), body)


@lru_cache(maxsize=1)
def call_response_validator() -> Draft4Validator:
    """The create-call answer (201)."""
    return _validator(VOICE, {"$ref": "#/components/schemas/CreateCallResponse"})
