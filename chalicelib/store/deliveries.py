"""Deliveries: one item per (campaign, recipient), created when the recipient is first claimed.

A campaign's deliveries are spread over `buckets` partition keys (keys.delivery_pk), so no key takes
more than a few hundred writes a second. Every change is a conditional write on the current state and
attempt number, so a duplicate SQS delivery or a re-released chunk changes nothing; a write that
loses its condition hands back the item as it is (ReturnValuesOnConditionCheckFailure), which spares
a read.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.domain.delivery import (
    COUNTER_OF_STATE,
    ENGAGED_FIELDS,
    ENGAGEMENT_PREFIX,
    DeliveryState,
    engagement_counts,
    skip_counter,
)
from chalicelib.domain.responses import RECEIPT_PREFIX, RECEIPT_RANK, RECEIPTS_WAITING, receipt_counters
from chalicelib.settings import get_settings
from chalicelib.store import aws, keys

DUE_INDEX = "due"
# Outcome writes are retried this many times beyond botocore's own retries: an outcome lost after a
# send turns the recipient `unknown` on redelivery.
OUTCOME_WRITE_ATTEMPTS = 4


@dataclass(frozen=True)
class Written:
    """Whether a conditional write happened; if not, the item as it stood (None when there is none)."""

    ok: bool
    current: dict[str, Any] | None = None


def _table() -> str:
    return get_settings().deliveries_table


def pk_for(campaign_pk: str, buckets: int, recipient_id: str) -> str:
    return keys.delivery_pk(campaign_pk, keys.bucket_of(recipient_id, buckets))


def _conditional(call: Any, **params: Any) -> Written:
    """The write; with `ReturnValues="ALL_NEW"`, a written one's `current` is the item as it became."""
    try:
        answer = call(TableName=_table(), ReturnValuesOnConditionCheckFailure="ALL_OLD", **params)
        return Written(True, aws.from_item(answer["Attributes"]) if "Attributes" in answer else None)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        item = exc.response.get("Item")
        return Written(False, aws.from_item(item) if item else None)


def _update(
    pk: str, rid: str, expression: str, condition: str, values: dict[str, Any], names: dict[str, str] | None = None
) -> Written:
    names = {**({"#st": "state"} if "#st" in expression + condition else {}), **(names or {})}
    return _conditional(
        aws.dynamodb().update_item,
        Key=aws.to_item({"pk": pk, "sk": rid}),
        UpdateExpression=expression,
        ConditionExpression=condition,
        ExpressionAttributeValues=aws.to_values(values),
        **({"ExpressionAttributeNames": names} if names else {}),
    )


def _create(item: dict[str, Any]) -> Written:
    """Write the delivery unless one exists already: the claim that makes duplicates harmless. Tried again on
    errors botocore gave up on, as the outcome writes are: a throttled claim wrote nothing, and a retry that
    meets its own earlier write finds the condition false, as botocore's own retry would."""
    return _persistently(
        lambda: _conditional(
            aws.dynamodb().put_item, Item=aws.to_item(item), ConditionExpression="attribute_not_exists(pk)"
        )
    )


def _persistently(write: Any) -> Written:
    """An outcome write, tried again on errors botocore gave up on (throttling storms, 5xx)."""
    for attempt in range(1, OUTCOME_WRITE_ATTEMPTS + 1):
        try:
            result: Written = write()
            return result
        except ClientError:
            if attempt == OUTCOME_WRITE_ATTEMPTS:
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


EXPIRED = "expired: the campaign's expires_at passed before it was sent"


def _close_attempt(
    pk: str, rid: str, attempt: int, expression: str, values: dict[str, Any], *, over_unknown: str | None
) -> Written:
    """Close attempt `attempt` while it is in flight, or (with `over_unknown`, the expression for that case)
    over `unknown` set by a duplicate delivery of the same chunk that found the claim in flight: the worker
    that made the send knows better. An `unknown` never replaces an `unknown` (pass None).

    Two conditions tried in turn rather than one with OR: the second only when the first failed on an
    `unknown` of this attempt (its ALL_OLD says so, no read), so the write every recipient makes has the
    floor's condition; the local AWS spends 15% more on an UpdateItem whose condition has an OR.
    """
    first = _update(pk, rid, expression, "#st = :in_flight AND attempt = :attempt",
                    {**values, ":in_flight": DeliveryState.IN_FLIGHT.value, ":attempt": attempt})  # fmt: skip
    current = first.current
    if first.ok or over_unknown is None or current is None or current.get("state") != DeliveryState.UNKNOWN:
        return first
    if int(current.get("attempt", -1)) != attempt:
        return first
    return _update(pk, rid, over_unknown, "#st = :unknown AND attempt = :attempt",
                   {**values, ":unknown": DeliveryState.UNKNOWN.value, ":attempt": attempt})  # fmt: skip


def _expires_at() -> int:
    """The TTL (`expires_at`, DeliveriesTable's TTL attribute): the retention from now. Written with every
    claim (and with a parked or unsent delivery), so the outcome write every recipient makes does not
    carry it: a delivery is kept the retention after its last attempt started, which is after it ended
    by no more than the attempt lasted (seconds; DynamoDB deletes expired items within days anyway)."""
    return int(time.time() + get_settings().delivery_retention_days * 86_400)


def claim_first(
    pk: str,
    rid: str,
    token: str,
    destination: tuple[int, str],
    tries: int = 1,
    *,
    variant: str | None = None,
    segment: str | None = None,
    channel_step: int = 0,
    slot: str | None = None,
) -> Written:
    """Create the recipient's delivery as in flight on attempt 1, unless it exists already.

    `token` is the chunk's claim token (carried in the SQS message body, so it survives a redrive);
    `destination` the index and address among the recipient's destinations this attempt goes to. The
    recipient's data stays in the chunk: it is written only with a retry or a parked recipient, which are
    sent again without reading the list, so a delivery sent once stays small (and so do its stream records).
    """
    item = {
        "pk": pk,
        "sk": rid,
        "state": DeliveryState.IN_FLIGHT.value,
        "attempt": 1,
        "claimed_by": token,
        "destination_index": destination[0],
        "destination": destination[1],
        "destination_try": tries,
        "updated_at": time.time(),
        "expires_at": _expires_at(),
    }
    if variant:  # its A/B variant, for the counters per variant (from the stream)
        item["variant"] = variant
    if segment:  # and its segment, for the counters per segment
        item["segment"] = segment
    if channel_step:  # on the campaign's fallback channel
        item["channel_step"] = channel_step
    if slot is not None:  # an `every` campaign's message (decision 49): its key is `<recipient id>/<slot>`
        item["slot"] = slot
    return _create(item)


def claim_queued(
    pk: str,
    rid: str,
    previous_attempt: int,
    token: str,
    destination: tuple[int, str],
    tries: int = 1,
    *,
    variant: str | None = None,
    segment: str | None = None,
    channel_step: int = 0,
) -> Written:
    """Move a queued delivery (a due retry, or one parked by a pause or its window) in flight as the next
    attempt; a parked one gets its A/B `variant` and its `segment` here."""
    values: dict[str, Any] = {}
    names: dict[str, str] = {}
    variant_set = ""
    if variant:
        variant_set, values[":variant"] = ", variant = :variant", variant
    if segment:  # SEGMENT is one of DynamoDB's reserved words: by a name placeholder
        variant_set, values[":segment"] = variant_set + ", #seg = :segment", segment
        names["#seg"] = "segment"
    if channel_step:
        variant_set, values[":step"] = variant_set + ", channel_step = :step", channel_step
    return _update(
        pk,
        rid,
        "SET #st = :in_flight, attempt = :next, claimed_by = :by, updated_at = :now, expires_at = :ttl, "
        "destination_index = :di, destination = :da, destination_try = :try" + variant_set + " "
        "REMOVE due_at, next_destination_index, next_try, next_channel_step",
        "#st = :queued AND attempt = :prev",
        {
            ":in_flight": DeliveryState.IN_FLIGHT.value,
            ":queued": DeliveryState.QUEUED.value,
            ":prev": previous_attempt,
            ":next": previous_attempt + 1,
            ":by": token,
            ":di": destination[0],
            ":da": destination[1],
            ":try": tries,
            ":now": time.time(),
            ":ttl": _expires_at(),
            **values,
        },
        names,
    )


def park_unsent(pk: str, rid: str, recipient: dict[str, Any], due_at: float | None = None) -> Written:
    """Keep a released but unsent recipient as queued: due now (its campaign was paused), or at `due_at` (its
    send window opens then)."""
    now = time.time()
    item = {
        "pk": pk,
        "sk": rid,
        "state": DeliveryState.QUEUED.value,
        "attempt": 0,
        "recipient": recipient,
        "due_at": now if due_at is None else due_at,
        "updated_at": now,
        "expires_at": _expires_at(),
    }
    return _create(item)


# A retry or failover appends the record of the attempt it closes to `history`; the last attempt is the
# delivery's own fields (see `record_outcome`).
_APPEND_ATTEMPT = ", history = list_append(if_not_exists(history, :none), :this)"


def record_outcome(
    pk: str,
    rid: str,
    attempt: int,
    state: DeliveryState,
    *,
    provider_message_id: str | None,
    error: str | None,
    reason: str | None = None,
) -> bool:
    """Close an in-flight attempt as succeeded, failed or unknown; retried until it is written.

    The attempt closed here is the delivery's last: its record is the delivery's own fields (destination,
    try and claim time written by the claim; state, provider id, error, reason and `ended_at` written here),
    so the one write every recipient makes stays as short as the floor's. Earlier attempts (closed by a
    retry or a failover) are in `history`. What an earlier attempt left (its id, error or reason) is removed
    when this attempt has none of its own.
    """
    values: dict[str, Any] = {":state": state.value, ":now": time.time()}
    sets, unset = ["#st = :state", "ended_at = :now"], []
    optional = (
        ("provider_message_id", provider_message_id, ":mid"),
        ("last_error", error, ":err"),
        ("last_reason", reason, ":why"),
    )
    for name, value, placeholder in optional:
        if value is not None:
            sets.append(f"{name} = {placeholder}")
            values[placeholder] = value
        else:
            unset.append(name)

    def expression(removes: list[str]) -> str:
        return "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")

    # A first attempt in flight has none of them; an unknown (or an earlier attempt) may have left some.
    in_flight = expression(unset if attempt > 1 else [])
    over_unknown = None if state == DeliveryState.UNKNOWN else expression(unset)
    return _persistently(lambda: _close_attempt(pk, rid, attempt, in_flight, values, over_unknown=over_unknown)).ok


def schedule_retry(
    pk: str,
    rid: str,
    attempt: int,
    due_at: float,
    error: str,
    recipient: dict[str, Any],
    *,
    next_destination: tuple[int, int],
    record: dict[str, Any],
    channel_step: int = 0,
    removes: tuple[str, ...] = (),
) -> bool:
    """Close an in-flight attempt as a failure that will be tried again at `due_at` on `next_destination`
    (the index of the destination and its try number: the same destination again, or the next one after a
    failover), keeping the recipient's data (destinations, attributes) the retry will need; `channel_step`
    1: on the campaign's fallback channel (decision 39); `removes`: attributes the attempt leaves behind (a
    receipt wait's, decision 48)."""
    values = {
        ":recipient": recipient,
        ":ndi": next_destination[0],
        ":nt": next_destination[1],
        ":none": [],
        ":this": [record],
        ":queued": DeliveryState.QUEUED.value,
        ":due": due_at,
        ":err": error,
        ":now": time.time(),
    }
    retry = (
        "SET #st = :queued, due_at = :due, last_error = :err, updated_at = :now, recipient = :recipient, "
        "next_destination_index = :ndi, next_try = :nt" + _APPEND_ATTEMPT + " REMOVE ended_at, last_reason"
    ) + "".join(f", {name}" for name in removes)
    if channel_step:
        retry = retry.replace(", next_try = :nt", ", next_try = :nt, next_channel_step = :step")
        values[":step"] = channel_step
    return _persistently(lambda: _close_attempt(pk, rid, attempt, retry, values, over_unknown=retry)).ok


def await_call(
    pk: str, rid: str, attempt: int, call_uuid: str, due_at: float, recipient: dict[str, Any], slot: int | None
) -> bool:
    """Keep a placed call's attempt in flight until its events end it: its uuid, the deadline past which the
    sweep calls it `unknown` (`due_at`, on the due index), the recipient's data a retry will need, and the
    concurrency slot it holds (None: none). False when the attempt is no longer in flight."""
    values: dict[str, Any] = {
        ":in_flight": DeliveryState.IN_FLIGHT.value,
        ":attempt": attempt,
        ":uuid": call_uuid,
        ":due": due_at,
        ":recipient": recipient,
        ":started": "started",
        ":now": time.time(),
    }
    sets = "SET call_uuid = :uuid, call_attempt = :attempt, call_status = :started, call_started_at = :now, "
    sets += "due_at = :due, recipient = :recipient"
    if slot is not None:
        sets, values[":slot"] = sets + ", call_slot = :slot", slot
    removes = " REMOVE call_slot, call_duration, call_price, call_answered_by, call_recording_url, call_ended_at"
    removes += ", call_transcript_url"
    if slot is not None:
        removes = removes.replace(" call_slot,", "")
    condition = "#st = :in_flight AND attempt = :attempt"
    return _persistently(lambda: _update(pk, rid, sets + removes, condition, values)).ok


# A delivery waiting for its receipt (decision 48): `receipt_due` is its deadline, and `due_at` (the due index)
# holds it too, so the release's sweep finds it when the deadline passes without reading anything else.
RECEIPT_DUE = "receipt_due"
# Receipts of this rank or above end a wait (delivered, rejected, undeliverable; read).
FINAL_RECEIPT_RANK = RECEIPT_RANK["delivered"]


def await_receipt(
    pk: str, rid: str, attempt: int, due_at: float, recipient: dict[str, Any], provider_message_id: str | None
) -> Written:
    """The provider took the attempt's message, and the campaign's fallback waits for its receipt: the attempt
    stays in flight until `due_at` (on the due index), keeping the recipient's data the fallback will need
    and the provider's id. Not written (the item as it is) when the attempt is no longer in flight, or when
    its final receipt came already (before the send's answer was recorded)."""
    values: dict[str, Any] = {
        ":in_flight": DeliveryState.IN_FLIGHT.value,
        ":attempt": attempt,
        ":due": due_at,
        ":recipient": recipient,
        ":final": FINAL_RECEIPT_RANK,
    }
    sets = f"SET {RECEIPT_DUE} = :due, due_at = :due, recipient = :recipient"
    if provider_message_id:
        sets, values[":mid"] = sets + ", provider_message_id = :mid", provider_message_id
    condition = (
        "#st = :in_flight AND attempt = :attempt AND (attribute_not_exists(receipt_rank) OR receipt_rank < :final)"
    )
    return _persistently(lambda: _update(pk, rid, sets, condition, values))


def settle_wait(pk: str, rid: str, attempt: int, error: str | None = None) -> Written:
    """A waiting attempt ends succeeded without its receipt (its campaign expired meanwhile: no fallback goes
    after that); off the due index."""
    values: dict[str, Any] = {
        ":in_flight": DeliveryState.IN_FLIGHT.value,
        ":succeeded": DeliveryState.SUCCEEDED.value,
        ":attempt": attempt,
        ":now": time.time(),
    }
    sets = "SET #st = :succeeded, ended_at = :now"
    if error:
        sets, values[":err"] = sets + ", last_error = :err", error
    condition = f"#st = :in_flight AND attempt = :attempt AND attribute_exists({RECEIPT_DUE})"
    return _persistently(lambda: _update(pk, rid, f"{sets} REMOVE due_at, {RECEIPT_DUE}", condition, values))


def note_call(pk: str, rid: str, attempt: int, call_uuid: str, fields: dict[str, Any], *, ended: bool) -> Written:
    """Record what an event says of a call still in flight (its status, duration, price, ...); an event that
    ends it also takes it off the due index. Not written (the item as it is) once the attempt has ended."""
    values: dict[str, Any] = {
        ":in_flight": DeliveryState.IN_FLIGHT.value,
        ":attempt": attempt,
        ":uuid": call_uuid,
    }
    sets = []
    for number, (name, value) in enumerate(sorted(fields.items())):
        sets.append(f"{name} = :f{number}")
        values[f":f{number}"] = value
    expression = ("SET " + ", ".join(sets) if sets else "") + (" REMOVE due_at" if ended else "")
    condition = "#st = :in_flight AND attempt = :attempt AND call_uuid = :uuid"
    return _persistently(lambda: _update(pk, rid, expression.strip(), condition, values))


def note_call_link(pk: str, rid: str, attempt: int, name: str, url: str) -> Written:
    """A call's recording or transcript link (`name`), kept while the delivery's call is this attempt's,
    whether or not the call has ended (the recording comes after it)."""
    values = {":url": url, ":attempt": attempt}
    return _persistently(
        lambda: _update(pk, rid, "SET #link = :url", "call_attempt = :attempt", values, {"#link": name})
    )


def skip_unsent(pk: str, rid: str, reason: str, slot: str | None = None) -> Written:
    """A released recipient that is not to be sent to (e.g. excluded), recorded as skipped for good."""
    return _final_unsent(pk, rid, DeliveryState.SKIPPED, slot, skip_reason=reason)


def fail_unsent(pk: str, rid: str, reason: str, slot: str | None = None) -> Written:
    """A released recipient that was never claimed, failed for good (e.g. its chunk was dead-lettered)."""
    return _final_unsent(pk, rid, DeliveryState.FAILED, slot, last_error=reason)


def expire_unsent(pk: str, rid: str, slot: str | None = None) -> Written:
    """A released recipient not sent because its campaign expired first."""
    return _final_unsent(pk, rid, DeliveryState.EXPIRED, slot, last_error=EXPIRED)


def _final_unsent(pk: str, rid: str, state: DeliveryState, slot: str | None, **why: str) -> Written:
    """A delivery created in a final state, never sent (unless one exists already); `slot`: an `every`
    campaign's message (decision 49), whose key is `<recipient id>/<slot>`."""
    item = {
        "pk": pk,
        "sk": rid,
        "state": state.value,
        "attempt": 0,
        **why,
        "updated_at": time.time(),
        "expires_at": _expires_at(),
    }
    if slot is not None:
        item["slot"] = slot
    return _persistently(lambda: _create(item))


def fail_queued(pk: str, rid: str, attempt: int, reason: str) -> Written:
    """A released retry that was never claimed, failed for good."""
    return _final_queued(pk, rid, attempt, DeliveryState.FAILED, reason)


def expire_queued(pk: str, rid: str, attempt: int) -> Written:
    """A waiting retry or parked recipient not sent because its campaign expired first."""
    return _final_queued(pk, rid, attempt, DeliveryState.EXPIRED, EXPIRED)


def skip_queued(pk: str, rid: str, attempt: int, reason: str) -> Written:
    """A waiting retry or parked recipient not to be sent to after all (it opted out meanwhile)."""
    return _final_queued(pk, rid, attempt, DeliveryState.SKIPPED, reason, field="skip_reason")


def _final_queued(
    pk: str, rid: str, attempt: int, state: DeliveryState, reason: str, field: str = "last_error"
) -> Written:
    values = {
        ":final": state.value,
        ":queued": DeliveryState.QUEUED.value,
        ":attempt": attempt,
        ":err": reason,
        ":now": time.time(),
        ":ttl": _expires_at(),
    }
    return _persistently(
        lambda: _update(
            pk,
            rid,
            f"SET #st = :final, {field} = :err, updated_at = :now, expires_at = :ttl REMOVE due_at",
            "#st = :queued AND attempt = :attempt",
            values,
        )
    )


def apply_receipt(pk: str, rid: str, attempt: int, receipt: dict[str, Any], *, awaited: bool = False) -> Written:
    """A provider's receipt for attempt `attempt` (decision 40): the delivery's `receipt` moves forward only
    (RECEIPT_RANK), with when it was delivered, read or found undeliverable. It applies whether or not the
    send's outcome is recorded yet: the claim made the delivery before the send, and the outcome write sets
    no receipt field. A repeated, late or another attempt's receipt changes nothing.

    `awaited` (a final receipt, of a campaign whose fallback waits for receipts; decision 48): written only
    if the attempt is in flight waiting for it, in the same write that ends the wait: a delivered or read
    receipt closes the attempt as succeeded (off the due index); a rejected or undeliverable one makes the
    wait due now (the caller falls back at once; the sweep would, failing that). Not written otherwise, and
    the caller applies it as any receipt."""
    status = str(receipt["status"])
    sets = ["receipt = :status", "receipt_rank = :rank", "receipt_at = :at"]
    values: dict[str, Any] = {":status": status, ":rank": RECEIPT_RANK[status], ":at": receipt["at"]}
    values[":attempt"] = attempt
    if status in ("delivered", "read"):
        sets.append("delivered_at = if_not_exists(delivered_at, :at)")
    if status == "read":
        sets.append("read_at = :at")
    if receipt.get("error"):
        sets.append("receipt_error = :error")
        values[":error"] = receipt["error"]
    condition = "attempt = :attempt AND (attribute_not_exists(receipt_rank) OR receipt_rank < :rank)"
    names: dict[str, str] = {}
    removes = ""
    if awaited:
        condition += f" AND #st = :in_flight AND attribute_exists({RECEIPT_DUE})"
        names["#st"] = "state"
        values.update({":in_flight": DeliveryState.IN_FLIGHT.value, ":now": time.time()})
        if status in ("delivered", "read"):
            sets += ["#st = :succeeded", "ended_at = :now"]
            values[":succeeded"] = DeliveryState.SUCCEEDED.value
            removes = f" REMOVE due_at, {RECEIPT_DUE}, last_error, last_reason"
        else:
            sets.append("due_at = :now")
    return _persistently(
        lambda: _conditional(
            aws.dynamodb().update_item,
            Key=aws.to_item({"pk": pk, "sk": rid}),
            UpdateExpression="SET " + ", ".join(sets) + removes,
            ConditionExpression=condition,
            ExpressionAttributeValues=aws.to_values(values),
            **({"ExpressionAttributeNames": names} if names else {}),
            ReturnValues="ALL_NEW",  # free: tells the caller whether the attempt was left `unknown`
        )
    )


def accepted_after_all(pk: str, rid: str, attempt: int, provider_message_id: str | None) -> Written:
    """An `unknown` attempt that a receipt proves the provider took (its `client_ref` names the attempt):
    succeeded, with the provider's id. Nothing else moves: not a later attempt, not another state."""
    values: dict[str, Any] = {
        ":succeeded": DeliveryState.SUCCEEDED.value,
        ":unknown": DeliveryState.UNKNOWN.value,
        ":attempt": attempt,
    }
    sets = "SET #st = :succeeded"
    if provider_message_id:
        sets, values[":mid"] = sets + ", provider_message_id = :mid", provider_message_id
    return _persistently(
        lambda: _update(
            pk, rid, sets + " REMOVE last_error, last_reason", "#st = :unknown AND attempt = :attempt", values
        )
    )


# A delivery keeps the ids of at most this many replies (a recipient replying more is not counted again).
MAX_REPLIES = 50


def note_reply(pk: str, rid: str, message_uuid: str, at: float) -> Written:
    """A reply the recipient sent to the campaign's number (decision 45): its id joins the delivery's
    `reply_ids` (a set: the provider sending the message again changes nothing), with `last_reply_at`. Not
    written where the delivery is gone (retention) or already holds MAX_REPLIES replies."""
    return _persistently(
        lambda: _conditional(
            aws.dynamodb().update_item,
            Key=aws.to_item({"pk": pk, "sk": rid}),
            UpdateExpression="ADD reply_ids :ids SET last_reply_at = :at",
            ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(reply_ids) OR size(reply_ids) < :most)",
            ExpressionAttributeValues={
                ":ids": {"SS": [message_uuid]},
                ":at": {"N": repr(at)},
                ":most": {"N": str(MAX_REPLIES)},
            },
        )
    )


def record_click(pk: str, rid: str, at: float) -> bool:
    """A recipient followed its tracked link (decision 43): `clicks` up by one, `clicked_at` the first time.
    False when the delivery is not there (removed by its retention). One UpdateItem; the stream counts it."""
    return _conditional(
        aws.dynamodb().update_item,
        Key=aws.to_item({"pk": pk, "sk": rid}),
        UpdateExpression="ADD clicks :one SET clicked_at = if_not_exists(clicked_at, :at), last_clicked_at = :at",
        ConditionExpression="attribute_exists(pk)",
        ExpressionAttributeValues=aws.to_values({":one": 1, ":at": at}),
    ).ok


def record_conversion(pk: str, rid: str, goal: str, at: float, value: Any = None) -> dict[str, Any] | None:
    """A goal the customer says the recipient reached (decision 43): `conversions` up by one, `converted_at`
    the first time, the last one's goal, value and time (the stream's `recipient.converted` event reads them).
    The delivery as it now is; None when the recipient has no delivery in the campaign."""
    sets = "SET converted_at = if_not_exists(converted_at, :at), conversion_goal = :goal, conversion_at = :at"
    values: dict[str, Any] = {":one": 1, ":at": at, ":goal": goal}
    if value is None:
        expression = f"ADD conversions :one {sets} REMOVE conversion_value"
    else:
        expression, values[":value"] = f"ADD conversions :one {sets}, conversion_value = :value", value
    try:
        answer = aws.dynamodb().update_item(
            TableName=_table(),
            Key=aws.to_item({"pk": pk, "sk": rid}),
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=aws.to_values(values),
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        return None
    return aws.from_item(answer["Attributes"])


def lease_due(pk: str, rid: str, attempt: int, until: float, *, was: float | None = None) -> bool:
    """Set a queued delivery's due time: a released retry's pushed out, so the next release does not hand it
    out again (only while its due time is still `was`, the one the release read), or a parked one's.

    If a released retry's chunk is lost, the recipient becomes due again when the lease ends.
    """
    condition = "#st = :queued AND attempt = :attempt"
    values: dict[str, Any] = {":until": until, ":queued": DeliveryState.QUEUED.value, ":attempt": attempt}
    if was is not None:
        condition, values[":was"] = condition + " AND due_at = :was", was
    return _update(pk, rid, "SET due_at = :until", condition, values).ok


def get_delivery(pk: str, rid: str) -> dict[str, Any] | None:
    found = aws.dynamodb().get_item(TableName=_table(), Key=aws.to_item({"pk": pk, "sk": rid}), ConsistentRead=True)
    return aws.from_item(found["Item"]) if "Item" in found else None


def due_deliveries(pk: str, now: float, limit: int) -> list[dict[str, Any]]:
    answer = aws.dynamodb().query(
        TableName=_table(),
        IndexName=DUE_INDEX,
        KeyConditionExpression="pk = :pk AND due_at <= :now",
        ExpressionAttributeValues=aws.to_values({":pk": pk, ":now": now}),
        Limit=limit,
    )
    return [aws.from_item(i) for i in answer.get("Items", [])]


def deliveries_of(campaign_pk: str, buckets: int, rids: list[str]) -> list[dict[str, Any]]:
    """The deliveries of these recipients that exist (BatchGetItem, 100 keys a call)."""
    wanted = [{"pk": pk_for(campaign_pk, buckets, rid), "sk": rid} for rid in rids]
    return aws.batch_get(_table(), wanted)


def deliveries_page(
    campaign_pk: str, buckets: int, *, after: str | None, limit: int, calls_only: bool = False
) -> tuple[list[dict[str, Any]], str | None]:
    """Deliveries bucket by bucket, in key order within each, after position `after` (`calls_only`: those
    a call was placed for)."""
    query = {"TableName": _table(), "KeyConditionExpression": "pk = :pk"}
    if calls_only:
        query["FilterExpression"] = "attribute_exists(call_uuid)"
    partitions = [keys.delivery_pk(campaign_pk, b) for b in range(buckets)]
    found, position = aws.page_over_buckets(partitions, query, after=after, limit=limit)
    return [item for _, item in found], position


def count_states(campaign_pk: str, buckets: int) -> dict[str, int]:
    """Every delivery counted by the counter its state is kept in (the recount), and `last_change`: the
    latest `updated_at` or `ended_at` seen. One projected Query page per ~1 MB of deliveries."""
    counts: Counter[str] = Counter()
    last_change = 0.0
    for bucket in range(buckets):
        params: dict[str, Any] = {
            "TableName": _table(),
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": keys.delivery_pk(campaign_pk, bucket)}},
            "ProjectionExpression": f"#st, updated_at, ended_at, skip_reason, receipt, {RECEIPT_DUE}, "
            + ", ".join(ENGAGED_FIELDS),
            "ExpressionAttributeNames": {"#st": "state"},
            "ConsistentRead": True,
        }
        for item in aws.query_all(params):
            state = item["state"]["S"]
            counts[COUNTER_OF_STATE.get(state, state)] += 1
            if state == DeliveryState.SKIPPED:
                counts[skip_counter(item.get("skip_reason", {}).get("S", "other"))] += 1
            for name in receipt_counters(item.get("receipt", {}).get("S")):
                counts[f"{RECEIPT_PREFIX}{name}"] += 1
            if RECEIPT_DUE in item:
                counts[RECEIPTS_WAITING] += 1
            engaged = {name: float(item.get(name, {}).get("N", 0)) for name in ENGAGED_FIELDS}
            for name, count in engagement_counts(engaged).items():
                counts[f"{ENGAGEMENT_PREFIX}{name}"] += count
            for stamp in ("updated_at", "ended_at"):  # an outcome write sets ended_at only
                last_change = max(last_change, float(item.get(stamp, {}).get("N", 0)))
    return {**counts, "last_change": int(last_change)}
