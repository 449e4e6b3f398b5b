"""Events (decision 41): what happened to a recipient, as the customer sees it.

- Delivery events come from the deliveries stream (a consumer of its own beside the counters), never as a
  write in the send path: a recipient finished (`delivery.succeeded`, `.failed`, `.unknown`, `.skipped`,
  `.expired`), an attempt to be tried again (`delivery.retrying`), a receipt (`receipt.delivered`,
  `.read`, `.undelivered`).
- Engagement (decision 43) from the same stream: a click on a tracked link (`recipient.clicked`), a
  conversion the customer reported (`recipient.converted`, logged when reported; its `occurred_at` is
  the data's `conversion_at`).
- Replies and opt-outs come from the inbound webhook (`message.received`, `recipient.opted_out`,
  `recipient.opted_in`), filed under the campaign and recipient they answer where there is one; such a
  reply also joins its delivery's `reply_ids`, which makes `recipient.replied` here (decision 45).

Each batch is written to the event log (store/event_log.py) and handed to the account's webhooks. An
event's id comes from the stream record it was read from, so a replayed batch makes the same events: the
log's object is put again as it was, and a webhook receiver deduplicates on `webhook-id`.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from typing import Any, get_args

from chalicelib.domain import segments
from chalicelib.domain.delivery import DeliveryState
from chalicelib.domain.models import EventType
from chalicelib.domain.responses import receipt_counters
from chalicelib.operations import webhooks
from chalicelib.store import aws, event_log, keys, stream_guard, timeline

# The delivery states that make an event when a delivery enters them (in_flight is the send under way).
EVENT_OF_STATE = {
    DeliveryState.SUCCEEDED.value: "delivery.succeeded",
    DeliveryState.FAILED.value: "delivery.failed",
    DeliveryState.UNKNOWN.value: "delivery.unknown",
    DeliveryState.SKIPPED.value: "delivery.skipped",
    DeliveryState.EXPIRED.value: "delivery.expired",
    DeliveryState.QUEUED.value: "delivery.retrying",
}
# The types the log holds: every event type but the webhooks' own notice (sent, never logged).
EVENT_TYPES = tuple(kind for kind in get_args(EventType) if not kind.startswith("webhook."))
DATA_FIELDS = (
    "state",
    "attempt",
    "destination",
    "skip_reason",
    "last_error",
    "provider_message_id",
    "receipt",
    "receipt_error",
    "variant",
    "segment",
    "channel_step",
    "last_reply_at",
    "clicks",
    "conversions",
    "conversion_goal",
    "conversion_value",
    "conversion_at",
)


# What each event counts in a campaign's timeline (GET /v1/campaigns/{id}/stats).
TIMELINE_COUNTER = {
    "delivery.succeeded": "sent",
    "delivery.failed": "failed",
    "delivery.unknown": "unknown",
    "delivery.skipped": "skipped",
    "delivery.expired": "expired",
    "delivery.retrying": "retried",
    "receipt.delivered": "delivered",
    "receipt.read": "read",
    "receipt.undelivered": "undelivered",
    "recipient.replied": "replies",
    "recipient.clicked": "clicks",
    "recipient.converted": "conversions",
}
TIMELINE_COUNTERS = (*TIMELINE_COUNTER.values(), "opted_out")


def _event_id(*parts: str) -> str:
    return "evt_" + hashlib.sha256(":".join(parts).encode()).hexdigest()[:24]


# An event read from the deliveries stream, with its delivery's bucket and its record's sequence number.
StreamEvent = tuple[dict[str, Any], int, str]


def from_stream(records: list[dict[str, Any]]) -> list[StreamEvent]:
    """The events a batch of deliveries stream records makes, in stream order."""
    found: list[StreamEvent] = []
    for record in records:
        if record.get("eventName") == "REMOVE":
            continue  # retention removing a finished delivery
        change = record["dynamodb"]
        if "erased_at" in change.get("NewImage", {}) or "erased_at" in change.get("OldImage", {}):
            continue  # an erasure's anonymised copy of a delivery (decision 42): nothing happened to anyone
        old = aws.from_item(change.get("OldImage", {}))
        new = aws.from_item(change.get("NewImage", {}))
        campaign_pk, bucket = keys.split_delivery_pk(change["Keys"]["pk"]["S"])
        account, campaign_id = keys.split_campaign_pk(campaign_pk)
        at = float(change.get("ApproximateCreationDateTime") or time.time())
        # An `every` campaign's message is keyed `<id>/<slot>`: the event names the recipient (decision 49).
        rid = segments.recipient_of_delivery(str(change["Keys"]["sk"]["S"]), new, old)
        base = {"account": account, "campaign_id": campaign_id, "recipient_id": rid}
        data = {name: new[name] for name in DATA_FIELDS if new.get(name) is not None}
        kinds = []
        if new.get("state") != old.get("state") and new.get("state") in EVENT_OF_STATE:
            kinds.append(EVENT_OF_STATE[str(new["state"])])
        if len(new.get("reply_ids") or ()) > len(old.get("reply_ids") or ()):
            kinds.append("recipient.replied")
        if new.get("receipt") != old.get("receipt"):
            gained = receipt_counters(new.get("receipt")) - receipt_counters(old.get("receipt"))
            kinds += [f"receipt.{name}" for name in sorted(gained)]
        engaged = [("clicks", "recipient.clicked"), ("conversions", "recipient.converted")]
        kinds += [kind for name, kind in engaged if int(new.get(name) or 0) > int(old.get(name) or 0)]
        for kind in kinds:
            event_id = _event_id(change["SequenceNumber"], kind)
            event = {"id": event_id, "type": kind, "occurred_at": at, **base, "data": data}
            found.append((event, bucket, str(change["SequenceNumber"])))
    return found


def inbound(
    account: str, kind: str, message_uuid: str, data: dict[str, Any], linked: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An event of a recipient's message (its id from the provider's message uuid: a repeat is the same),
    filed under the campaign and recipient it answers, if any (decision 45)."""
    return {
        "id": _event_id(message_uuid, kind),
        "type": kind,
        "occurred_at": time.time(),
        "account": account,
        "campaign_id": linked["campaign_id"] if linked else None,
        "recipient_id": linked["recipient_id"] if linked else None,
        "data": data,
    }


def record(events: list[dict[str, Any]], name: str) -> None:
    """Write the events to the log, one object per account, campaign and hour (`name` the object's name,
    the same for a replay of the same batch), then hand them to the account's webhooks."""
    groups: dict[tuple[str, str | None, str], list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        hour = event_log.hour_prefix(event["account"], event["occurred_at"])
        groups[(event["account"], event["campaign_id"], hour)].append(event)
    for (account, campaign, _), group in groups.items():
        event_log.write(account, campaign, group[0]["occurred_at"], name, group)
    by_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_account[event["account"]].append(event)
    for account, own in by_account.items():
        webhooks.enqueue(account, own)


def count(found: list[StreamEvent]) -> None:
    """Add a stream batch's campaign events to their campaigns' minutes (the timeline), one write per
    minute under each bucket's sequence guard, so a batch delivered again adds nothing twice."""
    minutes: dict[tuple[str, int, int], stream_guard.BucketChanges] = defaultdict(list)
    for event, bucket, sequence in found:
        counter = TIMELINE_COUNTER.get(event["type"])
        if counter is None:
            continue
        names = [counter]
        data = event["data"]
        if event["type"] == "delivery.skipped" and data.get("skip_reason") == "opted_out":
            names.append("opted_out")
        groups = [
            f"v.{data['variant']}." if data.get("variant") else "",
            f"g.{data['segment']}." if data.get("segment") else "",
        ]
        where = (keys.campaign_pk(event["account"], event["campaign_id"]), int(event["occurred_at"]) // 60 * 60, bucket)
        deltas: dict[str, int] = defaultdict(int)
        for one in names:
            for group in ("", *(g for g in groups if g)):
                deltas[group + one] += 1
        minutes[where].append((sequence, dict(deltas)))
    per_minute: dict[tuple[str, int], dict[int, stream_guard.BucketChanges]] = defaultdict(dict)
    for (campaign_pk, minute, bucket), changes in minutes.items():
        per_minute[(campaign_pk, minute)][bucket] = changes
    for (campaign_pk, minute), batches in per_minute.items():
        timeline.add(campaign_pk, minute, batches)  # one write per minute, more only for a replay
