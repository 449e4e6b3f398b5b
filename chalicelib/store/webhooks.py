"""Customer webhook endpoints and their delivery log (decision 41).

- `<account>#WEBHOOKS` / `<endpoint id>`: url, event types, signing secrets (the newest first; a rotated-out
  one is kept until `until` and signs beside the new one), and health: `failing_since` is set by the first
  failure after a success and removed by the next success; `disabled_at` once it failed for days.
- `<account>#WHD#<endpoint>` / `<occurred ms>-<event id>` (the delivery's id): each event sent to the endpoint, with its
  payload (for a replay), attempts, last answer and state (pending, delivered, dead_lettered); a week's TTL.
"""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any

from chalicelib.domain.errors import NotFound
from chalicelib.settings import get_settings
from chalicelib.store import aws, keys

LOG_DAYS = 7


def _table() -> str:
    return get_settings().main_table


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes, base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def create(account_id: str, definition: dict[str, Any]) -> dict[str, Any]:
    item = {
        **definition,
        "id": keys.new_id("whk"),
        "secrets": [{"secret": new_secret(), "until": None}],
        "enabled": True,
        "created_at": time.time(),
    }
    aws.dynamodb().put_item(
        TableName=_table(),
        Item=aws.to_item({"pk": keys.webhooks_pk(account_id), "sk": item["id"], **item}),
        ConditionExpression="attribute_not_exists(pk)",
    )
    return item


def get(account_id: str, endpoint_id: str) -> dict[str, Any]:
    found = aws.dynamodb().get_item(
        TableName=_table(),
        Key=aws.to_item({"pk": keys.webhooks_pk(account_id), "sk": endpoint_id}),
        ConsistentRead=True,
    )
    if "Item" not in found:
        raise NotFound(detail=f"no webhook {endpoint_id}")
    return aws.from_item(found["Item"])


def endpoints(account_id: str) -> list[dict[str, Any]]:
    """Every endpoint of the account (a handful: one Query)."""
    params = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": aws.to_values({":pk": keys.webhooks_pk(account_id)}),
    }
    return [aws.from_item(item) for item in aws.query_all(params)]


def endpoints_page(account_id: str, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    return aws.partition_page(_table(), keys.webhooks_pk(account_id), after=after, limit=limit)


def delete(account_id: str, endpoint_id: str) -> None:
    gone = aws.write_if(
        aws.dynamodb().delete_item,
        TableName=_table(),
        Key=aws.to_item({"pk": keys.webhooks_pk(account_id), "sk": endpoint_id}),
        ConditionExpression="attribute_exists(pk)",
    )
    if gone is None:
        raise NotFound(detail=f"no webhook {endpoint_id}")


def _update(account_id: str, endpoint_id: str, expression: str, values: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {
        "TableName": _table(),
        "Key": aws.to_item({"pk": keys.webhooks_pk(account_id), "sk": endpoint_id}),
        "UpdateExpression": expression,
        "ConditionExpression": "attribute_exists(pk)",
        "ReturnValues": "ALL_NEW",
    }
    if values:
        params["ExpressionAttributeValues"] = aws.to_values(values)
    answer = aws.write_if(aws.dynamodb().update_item, **params)
    if answer is None:
        raise NotFound(detail=f"no webhook {endpoint_id}")
    return aws.from_item(answer["Attributes"])


def rotate(account_id: str, endpoint_id: str, keep_old_seconds: float) -> dict[str, Any]:
    """A new secret first; the current one still signs beside it for `keep_old_seconds`."""
    current = get(account_id, endpoint_id)
    now = time.time()
    kept = [s for s in current["secrets"] if s.get("until") is None or float(s["until"]) > now][:1]
    rotated = [{"secret": new_secret(), "until": None}, *({**s, "until": now + keep_old_seconds} for s in kept)]
    return _update(account_id, endpoint_id, "SET secrets = :s", {":s": rotated})


def enable(account_id: str, endpoint_id: str) -> dict[str, Any]:
    return _update(account_id, endpoint_id, "SET enabled = :t REMOVE disabled_at, disabled_reason, failing_since",
                   {":t": True})  # fmt: skip


def failed(account_id: str, endpoint_id: str, now: float, disable_after: float) -> dict[str, Any]:
    """Note a failed delivery: failing since now unless it was already; disabled once failing that long."""
    endpoint = _update(account_id, endpoint_id, "SET failing_since = if_not_exists(failing_since, :now)", {":now": now})
    if endpoint.get("enabled") and now - float(endpoint["failing_since"]) >= disable_after:
        days = disable_after / 86_400
        reason = f"every delivery failed for {days:g} days; enable it again once the endpoint answers"
        endpoint = _update(
            account_id, endpoint_id, "SET enabled = :f, disabled_at = :now, disabled_reason = :why",
            {":f": False, ":now": now, ":why": reason},
        )  # fmt: skip
    return endpoint


def recovered(account_id: str, endpoint_id: str) -> None:
    _update(account_id, endpoint_id, "REMOVE failing_since", {})


def log_attempt(
    account_id: str, endpoint_id: str, event: dict[str, Any], payload: str, state: str, answer: str, attempt: int
) -> None:
    """The delivery's log item, as of this attempt (one item per event and endpoint, replaced each time)."""
    item = {
        "pk": keys.webhook_deliveries_pk(account_id, endpoint_id),
        "sk": delivery_id(event),
        "event_id": event["id"],
        "event_type": event["type"],
        "payload": payload,
        "state": state,
        "attempts": attempt,
        "last_answer": answer[:300],
        "updated_at": time.time(),
        "purge_at": int(time.time() + LOG_DAYS * 86_400),
    }
    aws.dynamodb().put_item(TableName=_table(), Item=aws.to_item(item))


def deliveries_page(
    account_id: str, endpoint_id: str, *, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    return aws.partition_page(_table(), keys.webhook_deliveries_pk(account_id, endpoint_id), after=after, limit=limit)


def delivery_id(event: dict[str, Any]) -> str:
    """A delivery's id (and log key): when its event happened, then the event's id, so the log is in time order."""
    return f"{int(float(event['occurred_at']) * 1000):015d}-{event['id']}"


def delivery(account_id: str, endpoint_id: str, delivery: str) -> dict[str, Any]:
    found = aws.dynamodb().get_item(
        TableName=_table(),
        Key=aws.to_item({"pk": keys.webhook_deliveries_pk(account_id, endpoint_id), "sk": delivery}),
        ConsistentRead=True,
    )
    if "Item" not in found:
        raise NotFound(detail=f"no delivery {delivery} of webhook {endpoint_id}")
    return aws.from_item(found["Item"])
