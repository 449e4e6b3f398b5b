"""SES's email events as EventBridge delivers them (decision 44): what one event says about a send. Pure.

SES publishes the events of every message sent through a configuration set with an EventBridge destination
to the account's default event bus: `source` `aws.ses`, `detail-type` "Email Delivered", "Email Bounced",
..., and `detail` the event record SES also publishes to SNS and Firehose (`eventType`, `mail` with the
message's id, headers and tags, and one object named after the type: `bounce`, `complaint`, `delivery`,
`open`, `click`, `reject`).

An event becomes at most a receipt (the delivery's `receipt` status, moved forward only as Vonage's are) and
a list of addresses to suppress for email:
- Bounce, Permanent: undeliverable, and each bounced address suppressed (`bounce`). Transient or
  Undetermined: undeliverable only (SES publishes a soft bounce once it stopped retrying), nothing suppressed.
- Complaint: each complaining address suppressed (`complaint`); the message was delivered (SES publishes a
  complaint only for a message the recipient's server took), so it counts as delivered too.
- Delivery: delivered. Open, Click: read (a click is an open). Reject: rejected (SES found a virus).
- Anything else (Send, DeliveryDelay, Rendering Failure, Subscription): noted, nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# The EventBridge detail-types the rule matches, and the configuration set's MatchingEventTypes.
DETAIL_TYPES = (
    "Email Bounced",
    "Email Complaint Received",
    "Email Delivered",
    "Email Opened",
    "Email Clicked",
    "Email Rejected",
)
MATCHING_EVENT_TYPES = ("BOUNCE", "COMPLAINT", "DELIVERY", "OPEN", "CLICK", "REJECT")
EVENT_DESTINATION_NAME = "bulk-campaign-events"
# The header the email channel sets to the send's idempotency key `<campaign>:<recipient>:<attempt>`.
REF_HEADER = "X-Campaign-Ref"
CONFIGURATION_SET_TAG = "ses:configuration-set"

_RECEIPTS = {"Delivery": "delivered", "Open": "read", "Click": "read", "Reject": "rejected", "Complaint": "delivered"}


@dataclass(frozen=True)
class EmailEvent:
    kind: str  # SES's eventType
    message_id: str  # SES's id of the message
    at: float  # when it happened (the type's own timestamp, else the message's)
    client_ref: str | None  # `<campaign>:<recipient>:<attempt>`: the header, else the send's tags
    configuration_set: str | None
    receipt: str | None  # the receipt status it moves the delivery to (RECEIPT_RANK), or None
    error: str | None = None  # why it was not delivered (a bounce's type and diagnostic)
    suppress: tuple[str, ...] = ()  # addresses to suppress for email
    source: str | None = None  # the suppression's source: bounce or complaint
    tags: dict[str, str] = field(default_factory=dict)


class NotAnEmailEvent(ValueError):
    """The event is not an SES email event this service reads."""


def parse(event: dict[str, Any]) -> EmailEvent:
    """What an EventBridge event from SES says (NotAnEmailEvent for anything else)."""
    detail = event.get("detail")
    if event.get("source") != "aws.ses" or not isinstance(detail, dict):
        raise NotAnEmailEvent(f"not an SES event: source {event.get('source')!r}")
    kind = str(detail.get("eventType") or detail.get("notificationType") or "")
    mail = detail.get("mail")
    if not kind or not isinstance(mail, dict) or not mail.get("messageId"):
        raise NotAnEmailEvent("an SES event names its eventType and its mail's messageId")
    tags = {str(name): str(values[0]) for name, values in (mail.get("tags") or {}).items() if values}
    body = detail.get(_object_of(kind)) or {}
    at = _epoch(body.get("timestamp")) or _epoch(mail.get("timestamp")) or _epoch(event.get("time")) or 0.0
    receipt, error, source = _RECEIPTS.get(kind), None, None
    suppress: tuple[str, ...] = ()
    if kind == "Bounce":
        receipt = "undeliverable"
        bounced = body.get("bouncedRecipients") or []
        diagnostics = "; ".join(str(r.get("diagnosticCode") or r.get("status") or "") for r in bounced).strip("; ")
        error = f"{body.get('bounceType', '')}/{body.get('bounceSubType', '')} bounce" + (
            f": {diagnostics}" if diagnostics else ""
        )
        if body.get("bounceType") == "Permanent":
            suppress, source = _addresses(bounced), "bounce"
    elif kind == "Complaint":
        suppress, source = _addresses(body.get("complainedRecipients") or []), "complaint"
        feedback = body.get("complaintFeedbackType")
        error = f"complaint: {feedback}" if feedback else "complaint"
    elif kind == "Reject":
        error = f"rejected by SES: {body.get('reason', '')}".strip(": ")
    return EmailEvent(
        kind=kind,
        message_id=str(mail["messageId"]),
        at=at,
        client_ref=client_ref(mail, tags),
        configuration_set=tags.get(CONFIGURATION_SET_TAG),
        receipt=receipt,
        error=error[:300] if error else None,
        suppress=suppress,
        source=source,
        tags=tags,
    )


def client_ref(mail: dict[str, Any], tags: dict[str, str]) -> str | None:
    """The send's `<campaign>:<recipient>:<attempt>`: from the X-Campaign-Ref header (exact) when SES kept
    the headers, else from the send's tags (a recipient id with characters a tag cannot hold was written
    with `_` for them, and then names no delivery)."""
    for header in mail.get("headers") or []:
        if str(header.get("name", "")).lower() == REF_HEADER.lower() and header.get("value"):
            return str(header["value"]).strip()
    if tags.get("campaign") and tags.get("recipient") and tags.get("attempt", "").isdigit():
        return f"{tags['campaign']}:{tags['recipient']}:{tags['attempt']}"
    return None


def account_of_configuration_set(name: str | None, prefix: str, stage: str) -> str | None:
    """The account a configuration set was made for (`<prefix>-<stage>-<account>`), or None."""
    head = f"{prefix}-{stage}-"
    if not name or not name.startswith(head) or len(name) == len(head):
        return None
    return name[len(head) :]


def _object_of(kind: str) -> str:
    """The detail's object that describes an event of this type (`Rendering Failure` is `failure`)."""
    return {"Rendering Failure": "failure", "DeliveryDelay": "deliveryDelay"}.get(kind, kind[:1].lower() + kind[1:])


def _addresses(recipients: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(r["emailAddress"]).strip() for r in recipients if r.get("emailAddress")))


def _epoch(timestamp: Any) -> float | None:
    if not timestamp:
        return None
    try:
        return datetime.fromisoformat(str(timestamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
