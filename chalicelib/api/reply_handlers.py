"""Reply handlers (decision 45): `POST /v1/reply-handlers`, `GET` (cursor), `GET` and `DELETE
/v1/reply-handlers/{handler_id}`. What a handler names (its campaign, a list, a webhook) must exist when it is
made: a 422 on that field otherwise."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.http import paged, parse_body, route
from chalicelib.api.views import iso
from chalicelib.domain.errors import Conflict, InvalidInput, NotFound
from chalicelib.domain.models import Page, Reaction, ReplyHandler, ReplyHandlerCreate
from chalicelib.store import actions, campaigns, lists, reply_handlers, webhooks

bp = Blueprint(__name__)


def handler_view(item: dict[str, Any]) -> ReplyHandler:
    return ReplyHandler.model_validate(
        {
            **{k: item.get(k) for k in ("id", "name", "campaign_id", "condition", "reactions", "enabled")},
            "channels": item.get("channels") or [],
            "matched": int(item.get("matched", 0)),
            "created_at": iso(item["created_at"]) or "",
        }
    )


@route(bp, "/reply-handlers", methods=["POST"], status=201)
def create_handler(account: str) -> ReplyHandler:
    body = parse_body(bp.current_request, ReplyHandlerCreate)
    if body.campaign_id is not None:
        _exists("campaign_id", lambda: campaigns.get_campaign(account, str(body.campaign_id)))
    for n, reaction in enumerate(body.reactions):
        _check_reaction(account, f"reactions.{n}", reaction)
    if len(reply_handlers.all_of(account)) >= reply_handlers.MAX_HANDLERS:
        raise Conflict(detail=f"an account has at most {reply_handlers.MAX_HANDLERS} reply handlers")
    return handler_view(reply_handlers.create(account, body.model_dump(mode="json", exclude_none=True)))


def _check_reaction(account: str, where: str, reaction: Reaction) -> None:
    if reaction.type == "add_to_list":
        _exists(f"{where}.list_id", lambda: lists.get_list(account, str(reaction.list_id)))
    elif reaction.type == "forward":
        _exists(f"{where}.webhook_id", lambda: webhooks.get(account, str(reaction.webhook_id)))
    elif reaction.type == "action":
        _exists(f"{where}.action_id", lambda: actions.get_action(account, str(reaction.action_id)))
    elif reaction.type == "start_campaign":
        campaign = _exists(f"{where}.campaign_id", lambda: campaigns.get_campaign(account, str(reaction.campaign_id)))
        if campaign.get("end_handle") != "continue":
            raise InvalidInput.on(
                f"{where}.campaign_id",
                "the campaign must have end_handle continue: it sends to the recipients its list gains",
            )


def _exists(field: str, read: Any) -> dict[str, Any]:
    try:
        found: dict[str, Any] = read()
    except NotFound as exc:
        raise InvalidInput.on(field, exc.detail) from None
    return found


@route(bp, "/reply-handlers", methods=["GET"])
def list_handlers(account: str) -> Page[ReplyHandler]:
    items, token = paged(
        bp.current_request,
        f"{account}/reply-handlers",
        lambda after, limit: reply_handlers.handlers_page(account, after=after, limit=limit),
    )
    return Page[ReplyHandler](items=[handler_view(item) for item in items], next_page_token=token)


@route(bp, "/reply-handlers/{handler_id}", methods=["GET"])
def get_handler(account: str, handler_id: str) -> ReplyHandler:
    return handler_view(reply_handlers.get(account, handler_id))


@route(bp, "/reply-handlers/{handler_id}", methods=["DELETE"], status=204)
def delete_handler(account: str, handler_id: str) -> None:
    reply_handlers.delete(account, handler_id)
