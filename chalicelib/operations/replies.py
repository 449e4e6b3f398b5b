"""Replies (decision 45): linking a recipient's message to the campaign it answers, and the account's reply
handlers (Vonage Bulk's event handlers).

- `link_sends`: the events consumer of the deliveries stream records, for each message a campaign sent from a
  number the account registered, who it went to (store/conversations.py): a reply from that destination to
  that number answers that campaign and recipient. Campaigns sending from any other sender (an alphanumeric
  id, a number not registered) cannot be replied to, and cost nothing here.
- `link`: an inbound message that answers a campaign joins its delivery's `reply_ids`, which the streams turn
  into `recipient.replied`, the campaign's `replied` counter and `replies` over time.
- `handle`: the account's handlers whose condition takes the message run their reactions, in order; each
  reaction is idempotent, so the provider sending the message again changes nothing more.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from chalicelib.channels.http_action import http_action, http_request
from chalicelib.domain import segments
from chalicelib.domain.delivery import OutcomeKind
from chalicelib.domain.errors import DomainError, NotFound
from chalicelib.domain.recipients import RowError, check_row
from chalicelib.domain.replies import matches
from chalicelib.domain.responses import ID_CHANNELS, SCOPES, SCOPES_OF_CHANNEL
from chalicelib.domain.segments import NO_SLOT, delivery_key, effective
from chalicelib.domain.template import TemplateError
from chalicelib.observability import logger
from chalicelib.operations import late_recipients, webhooks
from chalicelib.store import (
    actions,
    campaigns,
    conversations,
    deliveries,
    keys,
    list_items,
    lists,
    numbers,
    reply_handlers,
    suppressions,
)


def link_sends(found: list[tuple[dict[str, Any], int, str]]) -> int:
    """Note who each sent message of a stream batch went to, where its sender is one of the account's
    numbers; how many were noted."""
    sent = []
    owners: dict[str, str | None] = {}  # each sender's account, read once per batch (a number can move)
    for event, _, _ in found:
        data = event["data"]
        if event["type"] != "delivery.succeeded" or not data.get("destination"):
            continue
        campaign = _campaign(keys.campaign_pk(event["account"], event["campaign_id"]))
        if campaign is None:
            continue
        step = int(data.get("channel_step") or 0)
        sending = effective(campaign, data.get("segment"), step)
        number = str(_sender(sending, data, step) or "")
        if number not in owners:  # a number, a Viber service id or a page id (an alphanumeric sender takes no reply)
            registered = number.startswith("+") or sending.get("channel") in ID_CHANNELS
            registration = numbers.owner(number) if registered else None
            owners[number] = str(registration["account"]) if registration else None
        if owners[number] != event["account"]:
            continue
        one = {
            "account": event["account"],
            "number": number,
            "destination": str(data["destination"]),
            "campaign_id": event["campaign_id"],
            "recipient_id": event["recipient_id"],
            "channel": sending["channel"],
            "at": float(event["occurred_at"]),
        }
        if segments.is_every(campaign):  # the message's own delivery, `<id>/<slot>` (decision 49)
            one["delivery"] = _message_key(campaign, str(event["recipient_id"]), data.get("segment"))
        sent.append(one)
    conversations.note(sent)
    return len(sent)


def _message_key(campaign: dict[str, Any], rid: str, segment: Any) -> str:
    """An `every` campaign's message to `rid` for the segment named `segment` (none: the campaign's own)."""
    names = [str(g.get("name")) for g in campaign.get("segments") or []]
    slot = str(names.index(segment)) if segment in names else NO_SLOT
    return delivery_key(rid, slot)


def _sender(sending: dict[str, Any], data: dict[str, Any], step: int) -> Any:
    """Who the message went from, as dispatch picks it: the A/B variant's sender (not on the fallback), else
    the segment's, else the campaign's as that recipient got it."""
    named = [("variants", "variant")] if not step else []
    for kind, attribute in [*named, ("segments", "segment")]:
        part: dict[str, Any] = next((p for p in sending.get(kind) or [] if p.get("name") == data.get(attribute)), {})
        if part.get("sender"):
            return part["sender"]
    return sending.get("sender")


@lru_cache(maxsize=1024)
def _campaign(pk: str) -> dict[str, Any] | None:
    """A campaign as it sends (its sender, segments and fallback are fixed once it runs), read once per
    process."""
    return campaigns.get_campaign_by_pk(pk)


def link(account: str, number: str, sender: str, message_uuid: str) -> dict[str, Any] | None:
    """The campaign and recipient a message from `sender` to `number` answers (the last one the account sent
    from it to them, within 30 days), with the reply noted on its delivery; None when it answers none."""
    conversation = conversations.last(account, number, sender)
    if conversation is None:
        return None
    campaign = _campaign(keys.campaign_pk(account, str(conversation["campaign_id"])))
    if campaign is None:
        return None
    key = str(conversation.get("delivery") or conversation["recipient_id"])  # an `every` campaign's message
    pk = deliveries.pk_for(str(campaign["pk"]), int(campaign.get("buckets", 1)), key)
    deliveries.note_reply(pk, key, message_uuid, time.time())
    return {**conversation, "list_id": campaign.get("list_id")}


def handle(account: str, message: dict[str, Any], linked: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Run the account's handlers whose condition takes the message; what each did, per handler."""
    channel, text = str(message["channel"]), str(message.get("text") or "")
    handled = []
    for handler in reply_handlers.all_of(account):
        if not handler.get("enabled", True):
            continue
        if handler.get("channels") and channel not in handler["channels"]:
            continue
        if handler.get("campaign_id") and (linked is None or linked["campaign_id"] != handler["campaign_id"]):
            continue
        if not matches(handler["condition"], text):
            continue
        results = [
            {"type": reaction["type"], "result": _react(account, message, linked, reaction)}
            for reaction in handler["reactions"]
        ]
        reply_handlers.count_match(account, handler["id"])
        handled.append({"handler_id": handler["id"], "reactions": results})
    return handled


def _react(account: str, message: dict[str, Any], linked: dict[str, Any] | None, reaction: dict[str, Any]) -> str:
    """Run one reaction; what came of it (done, or why not). A reaction that cannot run (its list deleted
    since) is reported in the message's event, and the others still run."""
    run: Callable[[str, dict[str, Any], dict[str, Any] | None, dict[str, Any]], str] = REACTIONS[reaction["type"]]
    try:
        return run(account, message, linked, reaction)
    except DomainError as exc:
        logger.info("reaction not run", extra={"reaction": reaction["type"], "detail": exc.detail})
        return f"not run: {exc.detail}"


def _unsubscribe(account: str, message: dict[str, Any], linked: dict[str, Any] | None, reaction: dict[str, Any]) -> str:
    channel = reaction.get("channel") or message["channel"]
    scopes = SCOPES if channel == "all" else SCOPES_OF_CHANNEL.get(channel, ("sms",))
    suppressions.add(account, scopes, message["from"], "handler", f"reply handler: {str(message['text'])[:80]}")
    return "done"


def _add_to_list(account: str, message: dict[str, Any], linked: dict[str, Any] | None, reaction: dict[str, Any]) -> str:
    return _add(account, str(reaction["list_id"]), message, linked)


def _start_campaign(
    account: str, message: dict[str, Any], linked: dict[str, Any] | None, reaction: dict[str, Any]
) -> str:
    campaign = campaigns.get_campaign(account, str(reaction["campaign_id"]))
    if campaign.get("status") != "running" or campaign.get("end_handle") != "continue":
        return f"not run: the campaign is {campaign.get('status')}, not running with end_handle continue"
    return _add(account, str(campaign["list_id"]), message, linked)


def _add(account: str, list_id: str, message: dict[str, Any], linked: dict[str, Any] | None) -> str:
    """The sender into a list: under the campaign recipient's id when the reply answers one, else their
    number (as a list of numbers names its recipients). Already there: nothing changes."""
    rid = str(linked["recipient_id"]) if linked else str(message["from"])
    try:
        recipient = check_row({"id": rid, "destinations": [{"type": "phone", "address": message["from"]}]})
    except RowError as exc:
        return f"not run: {exc.detail}"
    lists.get_list(account, list_id)
    added = lists.put_recipients(account, list_id, [recipient])
    late_recipients.tell_campaigns(account, added)
    return "already listed" if rid in added.listed else "done"


def _set_attribute(
    account: str, message: dict[str, Any], linked: dict[str, Any] | None, reaction: dict[str, Any]
) -> str:
    found = _linked_item(account, linked)
    if found is None:
        return "not run: the reply answers no campaign"
    list_id, current = found
    row = lists.recipient_of(current).to_dict()
    row["attributes"] = {**(row.get("attributes") or {}), reaction["attribute"]: reaction["value"]}
    try:
        changed = check_row(row)
    except RowError as exc:
        return f"not run: {exc.detail}"
    list_items.replace_item(account, list_id, current, changed)
    return "done"


def _forward(account: str, message: dict[str, Any], linked: dict[str, Any] | None, reaction: dict[str, Any]) -> str:
    event = message.get("event")
    if event is None:
        raise NotFound(detail="no event to forward")
    webhooks.enqueue(account, [event], only=str(reaction["webhook_id"]))
    return "done"


def _action(account: str, message: dict[str, Any], linked: dict[str, Any] | None, reaction: dict[str, Any]) -> str:
    """The HTTP action's request, made now (its own timeout, at most 30 s), once: its idempotency key is the
    message's and the reaction's, for an endpoint that honours one when the message comes again."""
    item = actions.get_action(account, str(reaction["action_id"]))
    attributes = _attributes(account, linked)
    variables = {
        **attributes,
        "message": message.get("text") or "",
        "from": message["from"],
        "to": message["to"],
        "channel": message["channel"],
        "campaign_id": linked["campaign_id"] if linked else "",
        "recipient_id": linked["recipient_id"] if linked else "",
    }
    try:
        request = http_request(item, variables)
    except TemplateError as exc:
        return f"not run: the action does not render: {exc}"
    outcome, _ = http_action().request(request, f"reply:{message['message_uuid']}:{reaction['action_id']}")
    return "done" if outcome.kind == OutcomeKind.ACCEPTED else f"failed: {outcome.error}"


def _attributes(account: str, linked: dict[str, Any] | None) -> dict[str, Any]:
    """The linked recipient's attributes in the campaign's list (none when the reply answers no campaign, or
    the recipient left the list)."""
    try:
        found = _linked_item(account, linked)
    except NotFound:
        return {}
    return dict(lists.recipient_of(found[1]).attributes) if found else {}


def _linked_item(account: str, linked: dict[str, Any] | None) -> tuple[str, dict[str, Any]] | None:
    """The campaign's list and the linked recipient's item in it; None when the reply answers no campaign,
    NotFound when the list or the recipient is gone."""
    if linked is None or not linked.get("list_id"):
        return None
    list_id = str(linked["list_id"])
    generation = lists.generation_of(lists.get_list(account, list_id))
    return list_id, list_items.get_item(account, list_id, str(linked["recipient_id"]), generation)


REACTIONS: dict[str, Callable[[str, dict[str, Any], dict[str, Any] | None, dict[str, Any]], str]] = {
    "unsubscribe": _unsubscribe,
    "add_to_list": _add_to_list,
    "set_attribute": _set_attribute,
    "start_campaign": _start_campaign,
    "forward": _forward,
    "action": _action,
}
