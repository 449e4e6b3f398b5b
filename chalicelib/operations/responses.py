"""What comes back from recipients and their phones (decision 40).

- `inbound`: a recipient's message to one of the account's numbers, logged as an event (decision 41). A
  STOP word suppresses the sender for the channel (on WhatsApp marketing only; STOPALL every category);
  START lifts it; HELP sends the number's help text back on the same channel (once per inbound message,
  however often the provider repeats it). A WhatsApp message opens the sender's 24-hour window for session
  messages from that number (decision 46): one conditional write of its time.
- `receipt`: a message-status callback. Its `client_ref` names the campaign, recipient and attempt; the
  receipt moves that delivery forward (submitted < delivered | rejected | undeliverable < read), whether or
  not the send's outcome is recorded yet. One that matches no delivery is kept (`RECEIPT#<uuid>`), not
  dropped.
- `email_event`: SES's events of an email (decision 44), through EventBridge: a permanent bounce or a
  complaint suppresses the address for email (whether or not a campaign sent the message), and each moves
  the delivery's receipt as a status callback does; one that names no delivery is kept likewise.
"""

from __future__ import annotations

import time
from datetime import datetime
from functools import lru_cache
from typing import Any

from chalicelib.channels import OutgoingMessage, channel_for, ses
from chalicelib.domain import email_events
from chalicelib.domain.delivery import DeliveryState, OutcomeKind
from chalicelib.domain.errors import NotFound
from chalicelib.domain.recipients import AddressError, normalize_email
from chalicelib.domain.responses import (
    RECEIPT_RANK,
    SCOPES_OF_CHANNEL,
    inbound_addresses,
    intent,
    registered_as,
    stop_scopes,
)
from chalicelib.observability import logger
from chalicelib.operations import events, receipt_waits, replies
from chalicelib.settings import get_settings
from chalicelib.store import aws, campaigns, deliveries, keys, numbers, replays, sessions, suppressions

# A kept receipt, or the mark that a HELP was answered, lives this long.
KEEP_SECONDS = 7 * 86_400


def inbound(message: dict[str, Any]) -> str:
    """Act on an inbound message; what it was taken as (opted_out, opted_in, helped, noted). Every message is
    an event (`message.received`), and an opt-out or opt-in one more."""
    channel = str(message["channel"])
    to, sender = inbound_addresses(channel, str(message["to"]), str(message["from"]))
    registration = numbers.owner(to)
    if registration is None or registration.get("channel", "sms") != registered_as(channel):
        raise NotFound(detail=f"{to} is not registered on {channel} by any account (POST /v1/numbers)")
    account = str(registration["account"])
    if channel == "whatsapp":  # their 24-hour window for session messages opens (decision 46)
        sessions.opened(account, to, sender, min(_epoch(message.get("timestamp")), time.time()))
    text = str(message.get("text") or "")
    asked = intent(text)
    result = "noted"
    scopes: tuple[str, ...] = ()
    if asked in ("stop", "stop_all"):
        scopes = stop_scopes(channel, every_category=asked == "stop_all")
        suppressions.add(account, scopes, sender, "inbound", f"{text[:100]} to {to}")
        logger.info("opted out", extra={"account": account, "channel": channel, "scopes": scopes})
        result = "opted_out"
    elif asked == "start":
        scopes = SCOPES_OF_CHANNEL.get(channel, ("sms",))
        suppressions.remove(account, scopes, sender)
        result = "opted_in"
    elif asked == "help":
        if replays.first_use(f"HELP#{message['message_uuid']}", time.time() + KEEP_SECONDS):
            _answer_help(channel, to, sender, str(registration["help_text"]), str(message["message_uuid"]))
        result = "helped"
    uuid = str(message["message_uuid"])
    linked = replies.link(account, to, sender, uuid)
    data: dict[str, Any] = {"from": sender, "to": to, "channel": channel, "text": text[:1000], "taken_as": result}
    received = events.inbound(account, "message.received", uuid, data, linked)
    if result == "noted":  # STOP, START and HELP are the carriers' words: no handler stands in for them
        handled = replies.handle(account, {**message, "from": sender, "to": to, "event": received}, linked)
        if handled:
            data["handled_by"] = handled
    found = [received]
    if result in ("opted_out", "opted_in"):
        kind = f"recipient.{result}"
        found.append(events.inbound(account, kind, uuid, {"destination": sender, "scopes": list(scopes)}, linked))
    events.record(found, f"inbound-{uuid}")
    return result


def _answer_help(channel: str, number: str, sender: str, text: str, message_uuid: str) -> None:
    """The number's help text, back to who asked, on the channel they asked on (a WhatsApp text is taken
    inside the 24 hours their message opened); an MMS is answered by SMS, from the same number (an MMS is an
    image, and the help text is text)."""
    reply = OutgoingMessage(
        channel="sms" if channel == "mms" else channel,
        to=sender,
        sender=number,
        text=text,
        idempotency_key=f"help:{message_uuid}",
    )
    outcome = channel_for(channel).send(reply)
    if outcome.kind != OutcomeKind.ACCEPTED:
        logger.warning("help reply not sent", extra={"channel": channel, "error": outcome.error})


def receipt(status: dict[str, Any]) -> str:
    """Apply a delivery receipt; applied, ignored (a repeat, late, or another attempt's) or kept."""
    where = _delivery_of(str(status.get("client_ref") or ""))
    if where is None:
        return _keep(status)
    pk, rid, attempt = where
    at = _epoch(status.get("timestamp"))
    error = status.get("error") or {}
    reason = str(error.get("detail") or error.get("title") or "")[:300] if error else None
    receipt_of = {"status": status["status"], "at": at, "error": reason}
    written = _apply(str(status.get("client_ref")), pk, rid, attempt, receipt_of)
    if written.ok:
        if written.current is not None and written.current.get("state") == DeliveryState.UNKNOWN:
            # The send timed out without an answer, but the provider had taken it: no longer unknown.
            deliveries.accepted_after_all(pk, rid, attempt, status.get("message_uuid"))
        return "applied"
    if written.current is None:  # no delivery under that key: not one of ours after all
        return _keep(status)
    return "ignored"


def email_event(event: dict[str, Any]) -> str:
    """Act on one SES email event; what it did (`applied`, `ignored`, `kept`, `noted`), with `+suppressed`
    when it suppressed an address not suppressed before. A repeat, or an event older than what the delivery
    already says, changes nothing."""
    found = email_events.parse(event)
    where = _delivery_of(found.client_ref or "")
    account = _account_of(found, where)
    if where is not None and account is not None and not where[0].startswith(f"{account}#"):
        where = None  # a campaign of another account than the message's: applied to none
    suppressed = 0
    if found.suppress and account is not None:
        scopes = SCOPES_OF_CHANNEL["email"]
        for raw in found.suppress:
            address = _email(raw)
            added = suppressions.add(account, scopes, address, str(found.source), found.error)
            if added:
                suppressed += 1
                data = {"destination": address, "scopes": list(scopes), "source": found.source}
                opted_out = events.inbound(account, "recipient.opted_out", f"{found.message_id}:{address}", data)
                events.record([opted_out], f"ses-{found.message_id}-{found.kind}")
        logger.info("email suppressed", extra={"account": account, "source": found.source, "new": suppressed})
    result = "noted"
    if found.receipt is not None:
        result = _email_receipt(found, where)
    elif found.suppress and account is None:  # nobody to suppress it for: kept like an unmatched receipt
        result = _email_kept(found)
    return f"{result}+suppressed" if suppressed else result


def _email_receipt(found: email_events.EmailEvent, where: tuple[str, str, int] | None) -> str:
    if where is None:
        return _email_kept(found)
    pk, rid, attempt = where
    receipt_of = {"status": found.receipt, "at": found.at, "error": found.error}
    written = _apply(str(found.client_ref), pk, rid, attempt, receipt_of)
    if written.ok:
        return "applied"
    if written.current is None:
        return _email_kept(found)
    return "ignored"


def _email_kept(found: email_events.EmailEvent) -> str:
    status = {
        "message_uuid": found.message_id,
        "status": found.receipt or found.kind,
        "channel": "email",
        "client_ref": found.client_ref,
        "event": found.kind,
        "timestamp": found.at,
        **({"error": found.error} if found.error else {}),
        **({"suppress": list(found.suppress)} if found.suppress else {}),
        "tags": found.tags,
    }
    return _keep(status)


def _account_of(found: email_events.EmailEvent, where: tuple[str, str, int] | None) -> str | None:
    """Whose message it was: the account its configuration set was made for (every message of ours goes
    through one, campaign or not), else the campaign's owner."""
    s = get_settings()
    account = email_events.account_of_configuration_set(found.configuration_set, s.resource_prefix, s.stage)
    if account is not None and ses.configuration_set_name(account) == found.configuration_set:
        return account
    if where is not None:
        campaign_id = str(found.client_ref).partition(":")[0]
        return campaigns.owner_of(campaign_id)
    return None


def _email(raw: str) -> str:
    """An address as recipients' destinations hold it (as normalised at upload), else as SES wrote it."""
    try:
        return normalize_email(raw)
    except AddressError:
        return raw.strip()


def _apply(client_ref: str, pk: str, rid: str, attempt: int, receipt_of: dict[str, Any]) -> deliveries.Written:
    """Write a receipt to its delivery. On a campaign whose fallback waits for receipts (decision 48), a final
    one first tries the write that also ends the delivery's wait (the common case: one write), then, when the
    delivery was not waiting, the plain one; an undelivered one that ended a wait sends it to the fallback."""
    campaign_id = client_ref.partition(":")[0]
    found = _campaign_of(campaign_id)
    if found is not None and found[2] and RECEIPT_RANK.get(str(receipt_of["status"]), 0) >= 2:
        ended = deliveries.apply_receipt(pk, rid, attempt, receipt_of, awaited=True)
        if ended.ok:
            if ended.current is not None and str(receipt_of["status"]) in receipt_waits.UNDELIVERED:
                campaign = campaigns.get_campaign_by_pk(found[0])
                if campaign is not None:  # else the release's sweep does it (the wait is due now)
                    receipt_waits.after_receipt(campaign, ended.current)
            return ended
        current = ended.current
        if current is not None and deliveries.RECEIPT_DUE in current and int(current.get("attempt", 0)) == attempt:
            return ended  # waiting for it still, so its rank was not below: a repeat
    return deliveries.apply_receipt(pk, rid, attempt, receipt_of)


def _delivery_of(client_ref: str) -> tuple[str, str, int] | None:
    """(delivery pk, recipient id, attempt) named by `<campaign>:<recipient>:<attempt>` (the send's
    idempotency key), or None when it names no campaign we know."""
    campaign_id, _, rest = client_ref.partition(":")
    rid, _, attempt = rest.rpartition(":")
    if not (campaign_id and rid and attempt.isdigit()):
        return None
    found = _campaign_of(campaign_id)
    if found is None:
        return None
    campaign_pk, buckets, _ = found
    return deliveries.pk_for(campaign_pk, buckets, rid), rid, int(attempt)


@lru_cache(maxsize=1024)
def _campaign_of(campaign_id: str) -> tuple[str, int, bool] | None:
    """A campaign's key, bucket count and whether its fallback waits for receipts (fixed once it runs: the
    receipts name deliveries it made), read once per process."""
    account = campaigns.owner_of(campaign_id)
    if account is None:
        return None
    campaign = campaigns.get_campaign_by_pk(keys.campaign_pk(account, campaign_id))
    if campaign is None:
        return None
    return str(campaign["pk"]), int(campaign.get("buckets", 1)), receipt_waits.used_by(campaign)


def _keep(status: dict[str, Any]) -> str:
    """A receipt that matches no delivery, kept as it came (for a week) rather than dropped."""
    item = {
        "pk": f"RECEIPT#{status['message_uuid']}",
        "sk": str(status["status"]),
        "receipt": status,
        "purge_at": int(time.time() + KEEP_SECONDS),
    }
    aws.dynamodb().put_item(TableName=get_settings().main_table, Item=aws.to_item(item))
    logger.info("receipt kept: no delivery matches it", extra={"client_ref": status.get("client_ref")})
    return "kept"


def _epoch(timestamp: Any) -> float:
    """The receipt's time (ISO 8601, as Vonage sends it), else now."""
    try:
        return datetime.fromisoformat(str(timestamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()
