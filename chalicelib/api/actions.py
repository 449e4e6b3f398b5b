"""HTTP actions (decision 33): `POST /v1/actions`, `GET /v1/actions` (cursor), `GET` and `DELETE
/v1/actions/{id}`, and `POST /v1/actions/{id}/test` (the request rendered for a sample recipient, sent,
and what came back). Secrets go to Secrets Manager and are never returned."""

from __future__ import annotations

import time
from typing import Any

from chalice import Blueprint

from chalicelib.api.http import paged, parse_body, route
from chalicelib.api.views import iso
from chalicelib.channels.http_action import http_action, http_request, prepare, response_text
from chalicelib.domain.delivery import OutcomeKind
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.models import Action, ActionAuthView, ActionCreate, ActionTestRequest, ActionTestResult, Page
from chalicelib.domain.template import TemplateError
from chalicelib.store import actions
from chalicelib.store.secrets import SecretGone

bp = Blueprint(__name__)

OUTCOMES = {
    OutcomeKind.ACCEPTED: "succeeded",
    OutcomeKind.TRANSIENT: "retried",
    OutcomeKind.AMBIGUOUS: "unknown",
}


def action_view(item: dict[str, Any]) -> Action:
    auth = item.get("auth") or {"type": "none"}
    return Action(
        id=item["id"],
        name=item["name"],
        method=item["method"],
        url=item["url"],
        headers=item.get("headers") or {},
        body=item.get("body"),
        content_type=item.get("content_type") or "application/json",
        auth=ActionAuthView(
            type=auth["type"],
            username=auth.get("username"),
            signature_header=auth.get("signature_header") if auth["type"] == "hmac" else None,
            secret_set=bool(item.get("secret_name")),
        ),
        timeout_seconds=float(item["timeout_seconds"]),
        success_statuses=[int(s) for s in item.get("success_statuses") or []],
        success_json_field=item.get("success_json_field"),
        success_json_value=item.get("success_json_value"),
        retry_statuses=[int(s) for s in item.get("retry_statuses") or []],
        created_at=iso(item["created_at"]) or "",
    )


@route(bp, "/actions", methods=["POST"], status=201)
def create_action(account: str) -> Action:
    body = parse_body(bp.current_request, ActionCreate)
    definition = body.model_dump(mode="json")
    secret = definition["auth"].pop("secret")
    return action_view(actions.create_action(account, definition, secret))


@route(bp, "/actions", methods=["GET"])
def list_actions(account: str) -> Page[Action]:
    items, token = paged(
        bp.current_request,
        f"{account}/actions",
        lambda after, limit: actions.actions_page(account, after=after, limit=limit),
    )
    return Page[Action](items=[action_view(item) for item in items], next_page_token=token)


@route(bp, "/actions/{action_id}", methods=["GET"])
def get_action(account: str, action_id: str) -> Action:
    return action_view(actions.get_action(account, action_id))


@route(bp, "/actions/{action_id}", methods=["DELETE"], status=204)
def delete_action(account: str, action_id: str) -> None:
    actions.delete_action(account, action_id)


@route(bp, "/actions/{action_id}/test", methods=["POST"])
def test_action(account: str, action_id: str) -> ActionTestResult:
    item = actions.get_action(account, action_id)
    body = parse_body(bp.current_request, ActionTestRequest)
    try:
        request = http_request(item, {"message": "", **body.data})
    except TemplateError as exc:
        raise InvalidInput.on("data", f"the action does not render with this data: {exc}") from None
    key = f"test:{action_id}:{int(time.time())}"
    try:
        shown = prepare(request, key)
    except SecretGone as exc:
        return ActionTestResult(request={}, status=None, outcome="failed", error=str(exc), elapsed_ms=0)
    started = time.monotonic()
    outcome, answer = http_action().request(request, key)
    elapsed_ms = int((time.monotonic() - started) * 1000)
    return ActionTestResult(
        request={
            "method": shown.method,
            "url": shown.url,
            "headers": shown.masked,
            "body": request.body,
        },
        status=answer.status if answer else None,
        outcome=OUTCOMES.get(outcome.kind, "failed"),
        error=outcome.error,
        response_headers=dict(answer.headers) if answer else {},
        response_body=response_text(answer) if answer else "",
        elapsed_ms=elapsed_ms,
    )
