"""HTTP plumbing shared by the blueprints: auth, JSON bodies, problem+json errors, Idempotency-Key."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from typing import Any, Literal, TypeVar
from urllib.parse import unquote

from chalice import Blueprint, Chalice, Response
from chalice.app import Request
from pydantic import BaseModel, ValidationError

from chalicelib.domain.errors import (
    DomainError,
    FieldError,
    InvalidInput,
    MalformedRequest,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from chalicelib.observability import logger
from chalicelib.settings import get_settings
from chalicelib.store import accounts, idempotency, pages

Model = TypeVar("Model", bound=BaseModel)
Item = TypeVar("Item")
Auth = Literal["account", "operator", "none"]
OPERATOR = "operator"  # the idempotency scope of admin-token calls
PROBLEM_BASE = "https://bulk-campaign-api.dev/problems/"
PROBLEM_JSON = "application/problem+json"
MAX_PAGE = 1000
DEFAULT_PAGE = 100
# Lambda takes at most 6 MB of request; the event's envelope and headers need room too.
MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_IDEMPOTENCY_KEY = 256
# Ids in paths: what the API issues (prefix, underscore, hex) fits; anything else names nothing.
ID_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
_ID = re.compile(ID_PATTERN)
# A recipient's id is the customer's, or a derived E.164 number or email address (`+`, `@`, `.`): any text
# of 1 to 128 characters without `/` or control characters, URL-decoded (not `+` as a space).
RECIPIENT_ID_PATTERN = "^[^/\\x00-\\x1f\\x7f]{1,128}$"
_RECIPIENT_ID = re.compile(RECIPIENT_ID_PATTERN)
_WHOLE_NUMBER = re.compile("[+-]?[0-9]{1,9}")
# A lone surrogate can only come from a \uD800-\uDFFF escape or surrogate bytes; pairs (emoji) are fine.
_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def problem(status: int, title: str, detail: str, errors: list[FieldError] | None = None, slug: str = "") -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (slug or str(status)),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = [{"field": e.field, "reason": e.reason} for e in errors]
    return Response(body=json.dumps(body), status_code=status, headers={"Content-Type": PROBLEM_JSON})


def problem_from(error: DomainError) -> Response:
    return problem(error.status, error.title, error.detail, error.errors, error.type_slug)


def validation_problem(exc: ValidationError, prefix: str = "") -> InvalidInput:
    errors = [FieldError(prefix + (".".join(str(p) for p in e["loc"]) or "body"), e["msg"]) for e in exc.errors()]
    return InvalidInput(detail="; ".join(f"{e.field}: {e.reason}" for e in errors), errors=errors)


def _not_a_json_number(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _malformed_body(reason: str) -> MalformedRequest:
    return MalformedRequest(detail=f"the body is not valid JSON: {reason}", errors=[FieldError("body", reason)])


def parse_body(request: Request, model: type[Model]) -> Model:
    raw = request.raw_body
    if not raw:
        raise MalformedRequest(detail="a JSON body is required", errors=[FieldError("body", "missing")])
    try:
        # RFC 8259 has no NaN or Infinity; Python's json would accept them.
        data = json.loads(raw, parse_constant=_not_a_json_number)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _malformed_body(str(exc)) from None
    except RecursionError:
        raise _malformed_body("nested too deeply") from None
    raw_bytes = raw if isinstance(raw, bytes) else raw.encode(errors="surrogatepass")
    if _SURROGATE_HINT.search(raw_bytes) and not _is_unicode(data):
        raise _malformed_body("a string holds an unpaired surrogate (\\ud800-\\udfff), which is not Unicode text")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc) from None


def _is_unicode(data: Any) -> bool:
    try:
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(detail="send 'Authorization: Bearer <api key>'")
    return token.strip()


def authenticate(request: Request) -> str:
    account_id = accounts.account_for_api_key(bearer_token(request))
    if account_id is None:
        raise Unauthorized(detail="unknown API key")
    return account_id


def query_str(request: Request, name: str) -> str | None:
    params: Any = request.query_params or {}
    return params.get(name)


def query_time(request: Request, name: str, default: float) -> float:
    """An ISO 8601 time with its offset from the query string, as epoch seconds (`default` when absent)."""
    raw = query_str(request, name)
    if raw is None:
        return default
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput.on(name, "an ISO 8601 time with its offset, e.g. 2026-11-26T09:00:00+00:00") from None
    if moment.tzinfo is None:
        raise InvalidInput.on(name, "give the offset (e.g. +00:00 or Z)")
    return moment.timestamp()


def query_int(request: Request, name: str, default: int, low: int = 1, high: int = MAX_PAGE) -> int:
    raw = query_str(request, name)
    if raw is None:
        return default
    if not _WHOLE_NUMBER.fullmatch(raw):
        raise InvalidInput.on(name, "must be a whole number")
    value = int(raw)
    if not low <= value <= high:
        raise InvalidInput.on(name, f"must be between {low} and {high}")
    return value


def paged(
    request: Request, scope: str, fetch: Callable[[str | None, int], tuple[list[Item], str | None]]
) -> tuple[list[Item], str | None]:
    """One page of `fetch` from the request's `page_token` and `limit`; the items and the next token."""
    after = pages.decode(scope, query_str(request, "page_token"))
    items, last = fetch(after, query_int(request, "limit", DEFAULT_PAGE))
    return items, pages.encode(scope, last)


def _check_query(request: Request, path: str) -> None:
    """A query parameter the operation does not take is a 400 naming it (the document lists every one)."""
    from chalicelib.api.openapi import query_names

    unknown = sorted(set(request.query_params or {}) - query_names(request.method.lower(), f"/v1{path}"))
    if unknown:
        name = unknown[0]
        raise MalformedRequest(
            detail=f"unknown query parameter {name!r}",
            errors=[FieldError(name or "query", "not a query parameter of this operation")],
        )


def jsonable(result: Any) -> Any:
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    return result


def route(
    bp: Blueprint, path: str, *, methods: list[str], status: int = 200, auth: Auth = "account"
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a view that returns a model; errors become problem+json, POSTs honour Idempotency-Key.

    `auth="account"` views receive the caller's account id as their first argument; `"operator"`
    views need the admin token; `"none"` views are public (and take no Idempotency-Key).
    """

    def register(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def handle(**params: Any) -> Response:
            request = bp.current_request
            try:
                if len(request.raw_body or b"") > MAX_BODY_BYTES:
                    raise PayloadTooLarge(
                        detail=f"the body is over {MAX_BODY_BYTES:,} bytes; send fewer recipients per request",
                        errors=[FieldError("body", f"at most {MAX_BODY_BYTES} bytes")],
                    )
                account = _caller(request, auth)
                _check_query(request, path)
                params = _check_ids(params)
                args = (account,) if auth == "account" else ()

                def produce() -> dict[str, Any]:
                    return {"status": status, "body": jsonable(view(*args, **params))}

                key = request.headers.get("idempotency-key")
                if key and len(key) > MAX_IDEMPOTENCY_KEY:
                    reason = f"at most {MAX_IDEMPOTENCY_KEY} characters"
                    raise MalformedRequest(
                        detail=f"Idempotency-Key: {reason}", errors=[FieldError("Idempotency-Key", reason)]
                    )
                if request.method == "POST" and key and account:
                    result = idempotency.once(
                        account=account,
                        method=request.method,
                        path=f"{request.path} {sorted(params.items())}",
                        key=key,
                        body=_body_for_key(request),
                        produce=produce,
                        context=bp.lambda_context,
                    )
                else:
                    result = produce()
                if result["status"] == 204:
                    return Response(body="", status_code=204)
                return Response(
                    body=json.dumps(result["body"]),
                    status_code=result["status"],
                    headers={"Content-Type": "application/json"},
                )
            except DomainError as exc:
                return problem_from(exc)
            except Exception:
                logger.exception("unhandled error", extra={"path": request.path})
                return problem(500, "Internal error", "the request failed on our side; it is safe to retry it")

        bp.route(path, methods=methods)(handle)
        return view

    return register


def _check_ids(params: dict[str, Any]) -> dict[str, Any]:
    """A path id that cannot be one the API issued names nothing: 404 without a look-up. Returns the ids,
    a recipient's URL-decoded."""
    checked = {}
    for name, value in params.items():
        if name == "recipient_id":
            value = unquote(value)
            valid = bool(_RECIPIENT_ID.fullmatch(value)) and value == value.strip()
        else:
            valid = bool(_ID.fullmatch(value))
        if not valid:
            raise NotFound(detail=f"{name.removesuffix('_id')} {value[:64]!r} does not exist")
        checked[name] = value
    return checked


def _caller(request: Request, auth: Auth) -> str | None:
    if auth == "account":
        return authenticate(request)
    if auth == "operator":
        admin_only(request)
        return OPERATOR
    return None


def _body_for_key(request: Request) -> Any:
    raw: Any = request.raw_body or b"null"
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return raw.decode(errors="replace")


def admin_only(request: Request) -> None:
    token = bearer_token(request)
    expected = get_settings().admin_token
    if not expected or token != expected:
        raise Unauthorized(detail="this route needs the admin token")


# --- errors the framework answers, as problem+json --------------------------------------------


def problem_middleware(request: Request, get_response: Callable[[Request], Response]) -> Response:
    """Chalice's own error answers (405 unknown method, 415 unsupported media type, its 500) as problem+json.

    Registered with `app.register_middleware(..., "http")`: it wraps Chalice's routing, so it sees those
    answers in the Lambda and in `chalice local` alike.
    """
    try:
        response = get_response(request)
    except Exception:
        logger.exception("unhandled error", extra={"path": getattr(request, "path", "")})
        return problem(500, "Internal error", "the request failed on our side; it is safe to retry it")
    if response.status_code < 400 or _is_problem(response):
        return response
    return _as_problem(response)


def _is_problem(response: Response) -> bool:
    return any(k.lower() == "content-type" and v == PROBLEM_JSON for k, v in response.headers.items())


def _as_problem(response: Response) -> Response:
    status = response.status_code
    body = response.body
    if status == 500:
        converted = problem(500, "Internal error", "the request failed on our side; it is safe to retry it")
    else:
        title = _phrase(status)
        detail = body.get("Message") if isinstance(body, dict) else None
        slug = title.lower().replace(" ", "-")
        converted = problem(status, title, str(detail or title), slug=slug)
    kept = {k: v for k, v in response.headers.items() if k.lower() != "content-type"}
    converted.headers.update(kept)
    return converted


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def no_route_problem(method: str, path: str) -> tuple[dict[str, str], bytes]:
    """The headers and body of the 404 for a path no route matches."""
    detail = f"no route for {method} {path.split('?', 1)[0]}; see GET /v1/openapi.json"
    response = problem(404, "Not found", detail, slug="no-route")
    return {"Content-Type": PROBLEM_JSON}, str(response.body).encode()


def answer_unknown_routes_with_problems() -> None:
    """`chalice local` (and chalice.test's client) answer an unknown path before the app runs, with API
    Gateway's 403 "Missing Authentication Token": no middleware sees it. Make that a 404 problem+json there.

    In AWS the same answer comes from API Gateway itself; its Gateway Responses must say the same.
    """
    try:
        from chalice import local
    except ImportError:  # in the Lambda only chalice/app.py is packaged: nothing to patch
        return
    gateway: Any = local.LocalGateway
    if getattr(gateway.handle_request, "answers_unknown_routes", False):
        return
    original = gateway.handle_request

    class NoRoute(local.LocalGatewayException):
        CODE = 404

    def handle_request(self: Any, method: str, path: str, headers: Any, body: bytes | None) -> Any:
        try:
            self.event_converter.create_lambda_event(method=method, path=path, headers=headers, body=body)
        except ValueError:
            raise NoRoute(*no_route_problem(method, path)) from None
        return original(self, method, path, headers, body)

    handle_request.answers_unknown_routes = True  # type: ignore[attr-defined]
    gateway.handle_request = handle_request


def register_problem_responses(app: Chalice) -> None:
    app.register_middleware(problem_middleware, "http")
    answer_unknown_routes_with_problems()
