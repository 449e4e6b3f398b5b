"""Email events: SES's events (bounces, complaints, deliveries, opens) through EventBridge (decision 44);
each calls operations.responses.email_event.

EventBridge invokes the function asynchronously, one event an invocation: an unexpected error is retried by
Lambda (twice), then the event goes to EmailEventsFailureQueue (infra/template.json); every effect of an
event is a conditional write, so a retry or a second delivery of the same event changes nothing more. An
event that is not SES's is logged and left."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.email_events import NotAnEmailEvent
from chalicelib.observability import logger
from chalicelib.operations import responses


def handle_event(event: dict[str, Any]) -> str:
    try:
        result = responses.email_event(event)
    except NotAnEmailEvent as exc:
        logger.warning("not an SES email event; left", extra={"error": str(exc), "id": event.get("id")})
        return "left"
    detail = event.get("detail") or {}
    logger.info(
        "email event handled",
        extra={
            "type": event.get("detail-type"),
            "message_id": (detail.get("mail") or {}).get("messageId"),
            "result": result,
        },
    )
    return result
