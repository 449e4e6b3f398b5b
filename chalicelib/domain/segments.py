"""Segments (Vonage Bulk's conditions): ordered rules over a recipient's attributes and destinations that
choose what it gets. The first segment whose conditions hold is the recipient's; one that matches none gets
the campaign's own content, or is skipped with `no_segment`.

A condition names a `field`: `id`, `locale`, `timezone`, `attributes.<name>` or `destinations.<type>` (the
recipient's first address of that type). Operators:
- `exists`, `not_exists`: the field has a value (no `value`);
- `eq`, `ne`: equal values (numbers compare as numbers: 5 equals 5.0; text exactly);
- `in`, `not_in`: the value is one of a list;
- `contains`, `starts_with`: text (case-insensitive); `contains` also finds an item of a list attribute;
- `gt`, `gte`, `lt`, `lte`: numbers only (a text attribute never compares);
- `before`, `after`: dates or date-times (ISO 8601; a date is midnight UTC);
- `older_than_days`: a date at least that many days before now.
A field without a value matches only `not_exists`, `ne` and `not_in`. A value of another type than the
operator takes makes the condition false, never an error: one recipient's odd attribute does not stop a send.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.domain.recipients import Recipient

MISSING = object()
MAX_DAYS = 36_500
NUMBER_OPS = frozenset({"gt", "gte", "lt", "lte"})
DATE_OPS = frozenset({"before", "after"})
TEXT_OPS = frozenset({"contains", "starts_with"})
LIST_OPS = frozenset({"in", "not_in"})
PRESENCE_OPS = frozenset({"exists", "not_exists"})
OPERATORS = (
    "eq",
    "ne",
    *sorted(LIST_OPS),
    *sorted(TEXT_OPS),
    *sorted(NUMBER_OPS),
    *sorted(PRESENCE_OPS),
    *sorted(DATE_OPS),
    "older_than_days",
)


def field_value(recipient: Recipient, field: str) -> Any:
    """The recipient's value of a condition's field, or MISSING."""
    if field == "id":
        return recipient.id
    if field in ("locale", "timezone"):
        value = getattr(recipient, field)
        return MISSING if value is None else value
    kind, _, name = field.partition(".")
    if kind == "attributes":
        return recipient.attributes.get(name, MISSING)
    if kind == "destinations":
        for destination in recipient.destinations:
            if destination.type.value == name:
                return destination.address
    return MISSING


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _date(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _equal(left: Any, right: Any) -> bool:
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return a == b
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    return bool(left == right)


def holds(condition: Mapping[str, Any], recipient: Recipient, now: datetime) -> bool:
    """Whether one condition holds for the recipient."""
    op = condition["op"]
    wanted = condition.get("value")
    value = field_value(recipient, condition["field"])
    if op in PRESENCE_OPS:
        return (value is not MISSING) == (op == "exists")
    if value is MISSING:
        return op in ("ne", "not_in")
    if op in ("eq", "ne"):
        return _equal(value, wanted) == (op == "eq")
    if op in LIST_OPS:
        return any(_equal(value, item) for item in wanted or ()) == (op == "in")
    if op in TEXT_OPS:
        if op == "contains" and isinstance(value, list):
            return any(_equal(item, wanted) for item in value)
        if not isinstance(value, str) or not isinstance(wanted, str):
            return False
        text, part = value.casefold(), wanted.casefold()
        return part in text if op == "contains" else text.startswith(part)
    if op in NUMBER_OPS:
        a, b = _number(value), _number(wanted)
        if a is None or b is None:
            return False
        return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]
    if op in DATE_OPS:
        when, edge = _date(value), _date(wanted)
        if when is None or edge is None:
            return False
        return when < edge if op == "before" else when > edge
    if op == "older_than_days":
        when, days = _date(value), _number(wanted)
        return when is not None and days is not None and when <= now - timedelta(days=days)
    return False


def matches(segment: Mapping[str, Any], recipient: Recipient, now: datetime) -> bool:
    results = (holds(c, recipient, now) for c in segment["conditions"])
    return all(results) if segment.get("match", "all") == "all" else any(results)


def segment_for(segments: Iterable[Mapping[str, Any]], recipient: Recipient, now: datetime) -> Mapping[str, Any] | None:
    """The first segment the recipient matches, or None."""
    for segment in segments:
        if matches(segment, recipient, now):
            return segment
    return None


def every_match(segments: Iterable[Mapping[str, Any]], recipient: Recipient, now: datetime) -> list[int]:
    """The indices of every segment the recipient matches, in order (the `every` policy: one message each)."""
    return [i for i, segment in enumerate(segments) if matches(segment, recipient, now)]


# An `every` campaign keys each message's delivery `<recipient id>/<slot>`: the slot is the index of the segment
# it is for, or NO_SLOT for a recipient matching none (the campaign's own content, or skipped `no_segment`). A
# recipient id may hold "/" itself, so a key is split at its last "/", and only in an `every` campaign.
EVERY = "every"
SLOT_SEPARATOR = "/"
NO_SLOT = "-"


def is_every(campaign: Mapping[str, Any]) -> bool:
    return campaign.get("segment_policy") == EVERY


def slots_of(campaign: Mapping[str, Any], recipient: Recipient, now: datetime) -> list[str]:
    """An `every` campaign's slots for the recipient: one per segment it matches, else NO_SLOT alone."""
    matched = every_match(campaign.get("segments") or [], recipient, now)
    return [str(i) for i in matched] or [NO_SLOT]


def delivery_key(recipient_id: str, slot: str | None) -> str:
    return recipient_id if slot is None else f"{recipient_id}{SLOT_SEPARATOR}{slot}"


def split_key(key: str) -> tuple[str, str]:
    """An `every` campaign's delivery key as (recipient id, slot); a key without one, (key, NO_SLOT)."""
    recipient_id, separator, slot = key.rpartition(SLOT_SEPARATOR)
    return (recipient_id, slot) if separator else (key, NO_SLOT)


def recipient_of_delivery(key: str, *items: Mapping[str, Any]) -> str:
    """A delivery's recipient id: its key, less the slot of an `every` campaign's message. The slot is on the
    item from its creation, or in its `recipient` data while a retry or parked message waits (the first of
    `items`, e.g. a stream record's new and old images, that has one says)."""
    for item in items:
        slot = item.get("slot", (item.get("recipient") or {}).get("slot"))
        if slot is not None:
            return key.removesuffix(f"{SLOT_SEPARATOR}{slot}")
    return key


def slot_segment(campaign: Mapping[str, Any], slot: str | None) -> Mapping[str, Any] | None:
    """The segment a slot names (None: NO_SLOT, no slot, or an index the campaign does not have)."""
    defined = campaign.get("segments") or []
    if slot is None or not slot.isdigit() or int(slot) >= len(defined):
        return None
    found: Mapping[str, Any] = defined[int(slot)]
    return found


def value_problem(op: str, value: Any) -> str | None:
    """Why `value` does not suit `op` (checked when the campaign is created), or None."""
    if op in PRESENCE_OPS:
        return None if value is None else f"{op} takes no value"
    if value is None:
        return f"{op} needs a value"
    if op in LIST_OPS:
        if not isinstance(value, list) or not value:
            return f"{op} takes a non-empty list"
        return None
    if isinstance(value, list):
        return f"{op} takes one value, not a list"
    if op in TEXT_OPS and not isinstance(value, str):
        return f"{op} compares text: give a string"
    if op in NUMBER_OPS and _number(value) is None:
        return f"{op} compares numbers: give a number"
    if op in DATE_OPS and _date(value) is None:
        return f"{op} compares dates: give an ISO 8601 date or date-time"
    if op == "older_than_days" and (_number(value) is None or not 0 <= float(value) <= MAX_DAYS):
        return f"older_than_days takes a number of days, 0 to {MAX_DAYS:,}"
    return None


# What a segment with a channel of its own replaces in the campaign for its recipients.
CHANNEL_FIELDS = ("channel", "sender", "email", "whatsapp", "voice", "mms", "viber", "messenger", "action")


def effective(campaign: Mapping[str, Any], name: str | None, channel_step: int = 0) -> dict[str, Any]:
    """The campaign as the recipients of segment `name` get it: a segment with a channel of its own sends
    that channel, from its sender, with its content (and what its creation added: `segment_extras`);
    otherwise the campaign itself (its template and sender are picked per send). On `channel_step` 1, the
    campaign's `fallback` instead (decision 39)."""
    if channel_step and campaign.get("fallback"):
        # The fallback's own content: no segment's template or sender stands in for it.
        return {**_replaced(campaign, campaign["fallback"], campaign.get("fallback_extras") or {}), "segments": []}
    found = next((g for g in campaign.get("segments") or [] if g.get("name") == name), None) if name else None
    if not found or not found.get("channel"):
        return dict(campaign)
    return _replaced(campaign, found, (campaign.get("segment_extras") or {}).get(name) or {})


def _replaced(campaign: Mapping[str, Any], part: Mapping[str, Any], extras: Mapping[str, Any]) -> dict[str, Any]:
    """The campaign with a segment's or a fallback's channel, sender and content in place of its own."""
    own: dict[str, Any] = {
        "channel": part["channel"],
        "sender": part.get("sender") or campaign["sender"],
        "email": part.get("email"),
        "whatsapp": part.get("whatsapp"),
        "voice": part.get("voice"),
        "mms": part.get("mms"),
        "viber": part.get("viber"),
        "messenger": part.get("messenger"),
        "email_locales": None,
        "whatsapp_locales": None,
        "action": None,
        "email_configuration_set": None,
        "email_brand": None,
        **extras,
    }
    if part.get("template"):
        own.update(template=part["template"], template_locales=None)
    return {**campaign, **own}


# The kinds of value each operator compares (a condition whose attribute has none of them never holds).
KINDS_OF = {
    **dict.fromkeys(NUMBER_OPS, ("number",)),
    **dict.fromkeys(DATE_OPS | {"older_than_days"}, ("text",)),
    "starts_with": ("text",),
    "contains": ("text", "list"),
}


def kind_problems(defined: Iterable[Mapping[str, Any]], field_counts: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Conditions that can never hold for the list as it stands: an operator comparing numbers (or text,
    dates, lists) on an attribute whose every value in the list is of another kind. (field, reason) pairs,
    the field as `segments.<i>.conditions.<j>.op`. A list that keeps no kinds (made before they were
    counted), or an attribute it does not have yet, is not judged."""
    problems: list[tuple[str, str]] = []
    for i, segment in enumerate(defined):
        for j, condition in enumerate(segment.get("conditions") or []):
            field, op = str(condition.get("field", "")), str(condition.get("op", ""))
            wanted = KINDS_OF.get(op)
            if not wanted or not field.startswith("attributes."):
                continue
            kinds = {
                name.rsplit(":", 1)[1]
                for name, count in field_counts.items()
                if name.startswith(f"{field}:") and int(count) > 0
            }
            if kinds and not kinds & set(wanted):
                have = ", ".join(sorted(kinds))
                reason = f"{op} compares {' or '.join(wanted)}; {field} is {have} in every recipient of the list"
                problems.append((f"segments.{i}.conditions.{j}.op", reason))
    return problems
