"""Deliveries: one item per (campaign, recipient), created when the recipient is first claimed.

Every change is a conditional write on the current state and attempt number, so a duplicate SQS
delivery or a re-released chunk changes nothing.
"""

from __future__ import annotations

import time
from typing import Any

from chalicelib.domain.delivery import DeliveryState
from chalicelib.settings import get_settings
from chalicelib.store import aws

DUE_INDEX = "due"


def _table() -> str:
    return get_settings().deliveries_table


def _update(pk: str, phone: str, expression: str, condition: str, values: dict[str, Any]) -> bool:
    answer = aws.write_if(
        aws.dynamodb().update_item,
        TableName=_table(),
        Key=aws.to_item({"pk": pk, "sk": phone}),
        UpdateExpression=expression,
        ConditionExpression=condition,
        ExpressionAttributeNames={"#st": "state"},
        ExpressionAttributeValues=aws.to_values(values),
    )
    return answer is not None


def _create(item: dict[str, Any]) -> bool:
    """Write the delivery unless one exists already: the claim that makes duplicates harmless."""
    answer = aws.write_if(
        aws.dynamodb().put_item,
        TableName=_table(),
        Item=aws.to_item(item),
        ConditionExpression="attribute_not_exists(pk)",
    )
    return answer is not None


def claim_first(pk: str, phone: str, params: dict[str, Any], claimed_by: str) -> bool:
    """Create the recipient's delivery as in flight on attempt 1, unless it exists already.

    The params travel with the delivery so a retry needs no read of the list.
    """
    now = time.time()
    item = {
        "pk": pk,
        "sk": phone,
        "state": DeliveryState.IN_FLIGHT.value,
        "attempt": 1,
        "params": params,
        "claimed_by": claimed_by,
        "updated_at": now,
    }
    return _create(item)


def claim_queued(pk: str, phone: str, previous_attempt: int, claimed_by: str) -> bool:
    """Move a queued delivery (a due retry, or one parked by a pause) in flight as the next attempt."""
    return _update(
        pk,
        phone,
        "SET #st = :in_flight, attempt = :next, claimed_by = :by, updated_at = :now REMOVE due_at",
        "#st = :queued AND attempt = :prev",
        {
            ":in_flight": DeliveryState.IN_FLIGHT.value,
            ":queued": DeliveryState.QUEUED.value,
            ":prev": previous_attempt,
            ":next": previous_attempt + 1,
            ":by": claimed_by,
            ":now": time.time(),
        },
    )


def park_unsent(pk: str, phone: str, params: dict[str, Any]) -> bool:
    """Keep a released but unsent recipient (its campaign was paused) as queued and due now."""
    now = time.time()
    item = {
        "pk": pk,
        "sk": phone,
        "state": DeliveryState.QUEUED.value,
        "attempt": 0,
        "params": params,
        "due_at": now,
        "updated_at": now,
    }
    return _create(item)


def get_delivery(pk: str, phone: str) -> dict[str, Any] | None:
    found = aws.dynamodb().get_item(TableName=_table(), Key=aws.to_item({"pk": pk, "sk": phone}), ConsistentRead=True)
    return aws.from_item(found["Item"]) if "Item" in found else None


def record_outcome(
    pk: str, phone: str, attempt: int, state: DeliveryState, *, provider_message_id: str | None, error: str | None
) -> bool:
    """Close an in-flight attempt as succeeded or failed."""
    return _update(
        pk,
        phone,
        "SET #st = :state, provider_message_id = :mid, last_error = :err, updated_at = :now",
        "#st = :in_flight AND attempt = :attempt",
        {
            ":state": state.value,
            ":in_flight": DeliveryState.IN_FLIGHT.value,
            ":attempt": attempt,
            ":mid": provider_message_id,
            ":err": error,
            ":now": time.time(),
        },
    )


def schedule_retry(pk: str, phone: str, attempt: int, due_at: float, error: str) -> bool:
    """Close an in-flight attempt as a transient failure that will be tried again at `due_at`."""
    return _update(
        pk,
        phone,
        "SET #st = :queued, due_at = :due, last_error = :err, updated_at = :now",
        "#st = :in_flight AND attempt = :attempt",
        {
            ":queued": DeliveryState.QUEUED.value,
            ":in_flight": DeliveryState.IN_FLIGHT.value,
            ":attempt": attempt,
            ":due": due_at,
            ":err": error,
            ":now": time.time(),
        },
    )


def lease_due(pk: str, phone: str, attempt: int, until: float) -> bool:
    """Push a released retry's due time out, so the next release tick does not hand it out again.

    If its chunk is lost, the recipient becomes due again when the lease ends.
    """
    return _update(
        pk,
        phone,
        "SET due_at = :until",
        "#st = :queued AND attempt = :attempt",
        {":until": until, ":queued": DeliveryState.QUEUED.value, ":attempt": attempt},
    )


def due_deliveries(pk: str, now: float, limit: int) -> list[dict[str, Any]]:
    answer = aws.dynamodb().query(
        TableName=_table(),
        IndexName=DUE_INDEX,
        KeyConditionExpression="pk = :pk AND due_at <= :now",
        ExpressionAttributeValues=aws.to_values({":pk": pk, ":now": now}),
        Limit=limit,
    )
    return [aws.from_item(i) for i in answer.get("Items", [])]


def deliveries_page(pk: str, *, after_sk: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    params: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": pk}},
        "Limit": limit,
    }
    if after_sk:
        params["ExclusiveStartKey"] = {"pk": {"S": pk}, "sk": {"S": after_sk}}
    answer = aws.dynamodb().query(**params)
    last = answer.get("LastEvaluatedKey")
    return [aws.from_item(i) for i in answer.get("Items", [])], (last["sk"]["S"] if last else None)
