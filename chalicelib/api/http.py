"""HTTP plumbing shared by the blueprints: auth, JSON bodies, problem+json errors, Idempotency-Key."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from chalice import Blueprint, Response
from chalice.app import Request
from pydantic import BaseModel, ValidationError

from chalicelib.domain.errors import DomainError, FieldError, InvalidInput, MalformedRequest, Unauthorized
from chalicelib.observability import logger
from chalicelib.settings import get_settings
from chalicelib.store import accounts, idempotency, pages

Model = TypeVar("Model", bound=BaseModel)
Auth = Literal["account", "operator", "none"]
OPERATOR = "operator"  # the idempotency scope of admin-token calls
PROBLEM_BASE = "https://bulk-campaign-api.dev/problems/"
MAX_PAGE = 1000
DEFAULT_PAGE = 100


def problem(status: int, title: str, detail: str, errors: list[FieldError] | None = None, slug: str = "") -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (slug or str(status)),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = [{"field": e.field, "reason": e.reason} for e in errors]
    return Response(body=json.dumps(body), status_code=status, headers={"Content-Type": "application/problem+json"})


def problem_from(error: DomainError) -> Response:
    return problem(error.status, error.title, error.detail, error.errors, error.type_slug)


def validation_problem(exc: ValidationError, prefix: str = "") -> InvalidInput:
    errors = [FieldError(prefix + (".".join(str(p) for p in e["loc"]) or "body"), e["msg"]) for e in exc.errors()]
    return InvalidInput(detail="; ".join(f"{e.field}: {e.reason}" for e in errors), errors=errors)


def parse_body(request: Request, model: type[Model]) -> Model:
    raw = request.raw_body
    if not raw:
        raise MalformedRequest(detail="a JSON body is required", errors=[FieldError("body", "missing")])
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedRequest(
            detail=f"the body is not valid JSON: {exc}", errors=[FieldError("body", str(exc))]
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc) from None


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


def query_int(request: Request, name: str, default: int, low: int = 1, high: int = MAX_PAGE) -> int:
    raw = query_str(request, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput.on(name, "must be a whole number") from None
    if not low <= value <= high:
        raise InvalidInput.on(name, f"must be between {low} and {high}")
    return value


def paged(
    request: Request, scope: str, fetch: Callable[[str | None, int], tuple[list[dict[str, Any]], str | None]]
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `fetch` from the request's `page_token` and `limit`; the items and the next token."""
    after = pages.decode(scope, query_str(request, "page_token"))
    items, last = fetch(after, query_int(request, "limit", DEFAULT_PAGE))
    return items, pages.encode(scope, last)


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
                account = _caller(request, auth)
                args = (account,) if auth == "account" else ()

                def produce() -> dict[str, Any]:
                    return {"status": status, "body": jsonable(view(*args, **params))}

                key = request.headers.get("idempotency-key")
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
    except (ValueError, UnicodeDecodeError):
        return raw.decode(errors="replace")


def admin_only(request: Request) -> None:
    token = bearer_token(request)
    expected = get_settings().admin_token
    if not expected or token != expected:
        raise Unauthorized(detail="this route needs the admin token")
