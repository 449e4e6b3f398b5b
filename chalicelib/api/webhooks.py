"""Webhooks to the customer (decision 41): `POST /v1/webhooks` (the secret is shown once, here), `GET`
(cursor), `GET` and `DELETE /v1/webhooks/{id}`, `POST .../rotate` (a new secret; the old one signs beside
it for a day), `POST .../enable` (after it was disabled), `GET .../deliveries` (the log, a week) and
`POST .../deliveries/{delivery_id}/replay`."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.http import paged, parse_body, route
from chalicelib.api.views import iso
from chalicelib.channels import outbound
from chalicelib.channels.http_action import configured_guard
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.models import Page, Webhook, WebhookCreate, WebhookDelivery, WebhookSecret
from chalicelib.operations import webhooks as sending
from chalicelib.store import webhooks

bp = Blueprint(__name__)
KEEP_OLD_SECRET_SECONDS = 86_400


def webhook_view(item: dict[str, Any]) -> Webhook:
    return Webhook(
        id=item["id"],
        url=item["url"],
        event_types=item.get("event_types") or [],
        description=item.get("description"),
        enabled=bool(item.get("enabled")),
        disabled_reason=item.get("disabled_reason"),
        failing_since=iso(item.get("failing_since")),
        created_at=iso(item["created_at"]) or "",
    )


def _with_secret(item: dict[str, Any]) -> WebhookSecret:
    previous = [s for s in item["secrets"][1:] if s.get("until")]
    return WebhookSecret(
        webhook=webhook_view(item),
        secret=item["secrets"][0]["secret"],
        previous_secret_until=iso(previous[0]["until"]) if previous else None,
    )


@route(bp, "/webhooks", methods=["POST"], status=201)
def create_webhook(account: str) -> WebhookSecret:
    body = parse_body(bp.current_request, WebhookCreate)
    try:
        configured_guard().check(body.url)  # a private or metadata address is refused now, not at each send
    except outbound.RefusedUrl as exc:
        raise InvalidInput.on("url", exc.reason) from None
    return _with_secret(webhooks.create(account, body.model_dump(mode="json")))


@route(bp, "/webhooks", methods=["GET"])
def list_webhooks(account: str) -> Page[Webhook]:
    items, token = paged(
        bp.current_request,
        f"{account}/webhooks",
        lambda after, limit: webhooks.endpoints_page(account, after=after, limit=limit),
    )
    return Page[Webhook](items=[webhook_view(item) for item in items], next_page_token=token)


@route(bp, "/webhooks/{webhook_id}", methods=["GET"])
def get_webhook(account: str, webhook_id: str) -> Webhook:
    return webhook_view(webhooks.get(account, webhook_id))


@route(bp, "/webhooks/{webhook_id}", methods=["DELETE"], status=204)
def delete_webhook(account: str, webhook_id: str) -> None:
    webhooks.delete(account, webhook_id)


@route(bp, "/webhooks/{webhook_id}/rotate", methods=["POST"])
def rotate_secret(account: str, webhook_id: str) -> WebhookSecret:
    return _with_secret(webhooks.rotate(account, webhook_id, KEEP_OLD_SECRET_SECONDS))


@route(bp, "/webhooks/{webhook_id}/enable", methods=["POST"])
def enable_webhook(account: str, webhook_id: str) -> Webhook:
    return webhook_view(webhooks.enable(account, webhook_id))


def delivery_view(item: dict[str, Any]) -> WebhookDelivery:
    return WebhookDelivery(
        id=item["sk"],
        event_id=item["event_id"],
        event_type=item["event_type"],
        state=item["state"],
        attempts=int(item["attempts"]),
        last_answer=item.get("last_answer", ""),
        updated_at=iso(item["updated_at"]) or "",
    )


@route(bp, "/webhooks/{webhook_id}/deliveries", methods=["GET"])
def list_deliveries(account: str, webhook_id: str) -> Page[WebhookDelivery]:
    webhooks.get(account, webhook_id)
    items, token = paged(
        bp.current_request,
        f"{account}/webhooks/{webhook_id}/deliveries",
        lambda after, limit: webhooks.deliveries_page(account, webhook_id, after=after, limit=limit),
    )
    return Page[WebhookDelivery](items=[delivery_view(item) for item in items], next_page_token=token)


@route(bp, "/webhooks/{webhook_id}/deliveries/{delivery_id}/replay", methods=["POST"], status=202)
def replay_delivery(account: str, webhook_id: str, delivery_id: str) -> WebhookDelivery:
    webhooks.get(account, webhook_id)
    return delivery_view(sending.replay(account, webhook_id, delivery_id))
