"""HTTP actions (decision 33): `<account>#ACTIONS` / `<action_id>`, the definition without its secret.

An action's secret (a password, a token, an HMAC key) is kept in AWS Secrets Manager under
`<prefix>/<stage>/<account>/actions/<action_id>`; the item keeps that name only. Dispatch reads the secret
through Powertools parameters (`store.secrets`), cached per container.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.domain.errors import NotFound
from chalicelib.settings import get_settings
from chalicelib.store import aws, keys


def _table() -> str:
    return get_settings().main_table


def secret_name(account_id: str, action_id: str) -> str:
    s = get_settings()
    return f"{s.resource_prefix}/{s.stage}/{account_id}/actions/{action_id}"


def create_action(account_id: str, definition: dict[str, Any], secret: str | None) -> dict[str, Any]:
    """Store a new action (its secret first, in Secrets Manager); the action as stored."""
    action_id = keys.new_id("act")
    item = {**definition, "id": action_id, "created_at": time.time(), "secret_name": None}
    if secret is not None:
        name = secret_name(account_id, action_id)
        aws.client("secretsmanager").create_secret(Name=name, SecretString=secret)
        item["secret_name"] = name
    aws.dynamodb().put_item(
        TableName=_table(),
        Item=aws.to_item({"pk": keys.actions_pk(account_id), "sk": action_id, **item}),
        ConditionExpression="attribute_not_exists(pk)",
    )
    return item


def get_action(account_id: str, action_id: str) -> dict[str, Any]:
    found = aws.dynamodb().get_item(
        TableName=_table(),
        Key=aws.to_item({"pk": keys.actions_pk(account_id), "sk": action_id}),
        ConsistentRead=True,
    )
    if "Item" not in found:
        raise NotFound(detail=f"no action {action_id}")
    return aws.from_item(found["Item"])


def actions_page(account_id: str, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    return aws.partition_page(_table(), keys.actions_pk(account_id), after=after, limit=limit)


def delete_action(account_id: str, action_id: str) -> None:
    """Remove the action and its secret. Campaigns keep their copy of the action, but without the secret
    their sends are refused: such a campaign pauses with the reason (decision 31)."""
    deleted = aws.write_if(
        aws.dynamodb().delete_item,
        TableName=_table(),
        Key=aws.to_item({"pk": keys.actions_pk(account_id), "sk": action_id}),
        ConditionExpression="attribute_exists(pk)",
        ReturnValues="ALL_OLD",
    )
    if deleted is None:
        raise NotFound(detail=f"no action {action_id}")
    name = aws.from_item(deleted.get("Attributes", {})).get("secret_name")
    if name:
        try:
            aws.client("secretsmanager").delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
