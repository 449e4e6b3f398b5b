"""An account's campaigns as a whole: the index that pages them newest first (with filters), changing a
campaign's definition, and deleting it. Each is O(1) writes.

The index is one item per campaign under `<account>#CAMPAIGNS` (sort key `C#<created ms>#<campaign id>`,
with the campaign's `list_id`), written beside its META at creation. A page is one Query on the index,
its creation range a key condition and its list a filter, then one BatchGetItem per 100 campaigns for
their METAs, where the status is (so a status filter reads the current status, never a copy of it).
"""

from __future__ import annotations

from typing import Any

from chalicelib.domain.campaign import CampaignStatus
from chalicelib.domain.errors import Conflict, FieldError, NotFound
from chalicelib.settings import get_settings
from chalicelib.store import aws, campaigns, keys

_LAST_SK_CHAR = "~"  # after every character of an id: "C#<ms>#~" ends the range of that millisecond


def _table() -> str:
    return get_settings().main_table


def campaigns_page(
    account_id: str,
    *,
    after: str | None,
    limit: int,
    statuses: frozenset[str] = frozenset(),
    list_id: str | None = None,
    created_from_ms: int = 0,
    created_to_ms: int = keys.MAX_INDEX_MS,
) -> tuple[list[dict[str, Any]], str | None]:
    """The account's campaigns, newest first, created in [from, to] (milliseconds), of `list_id` and in one
    of `statuses` when given. A page holds at most `limit` campaigns, fewer when filters drop some."""
    pk = keys.campaigns_index_pk(account_id)
    values: dict[str, Any] = {
        ":pk": pk,
        ":from": keys.campaign_index_sk(created_from_ms, ""),
        ":to": keys.campaign_index_sk(created_to_ms, _LAST_SK_CHAR),
    }
    params: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :pk AND sk BETWEEN :from AND :to",
        "ScanIndexForward": False,
        "Limit": limit,
        "ConsistentRead": True,
    }
    if list_id:
        params["FilterExpression"] = "list_id = :list"
        values[":list"] = list_id
    params["ExpressionAttributeValues"] = aws.to_values(values)
    if after:
        params["ExclusiveStartKey"] = aws.to_item({"pk": pk, "sk": after})
    answer = aws.dynamodb().query(**params)
    ids = [item["id"]["S"] for item in answer.get("Items", [])]
    metas = aws.batch_get(_table(), [{"pk": keys.campaign_pk(account_id, i), "sk": keys.META} for i in ids])
    by_id = {meta["id"]: meta for meta in metas}
    found = [by_id[i] for i in ids if i in by_id and (not statuses or by_id[i]["status"] in statuses)]
    last = answer.get("LastEvaluatedKey")
    return found, (last["sk"]["S"] if last else None)


def update_definition(
    campaign: dict[str, Any], fields: dict[str, Any], allowed: frozenset[CampaignStatus]
) -> dict[str, Any]:
    """Set `fields` on the campaign if its status is still one of `allowed` (Conflict naming the status it
    has otherwise); the campaign as it is now. A new list is copied onto the index item, for its filter."""
    expression, names, values = campaigns.set_clause(fields)
    statuses = []
    for i, status in enumerate(sorted(allowed)):
        values[f":s{i}"] = status.value
        statuses.append(f":s{i}")
    names["#st"] = "status"
    answer = aws.write_if(
        aws.dynamodb().update_item,
        TableName=_table(),
        Key=aws.to_item({"pk": campaign["pk"], "sk": keys.META}),
        UpdateExpression=expression,
        ConditionExpression=f"attribute_exists(pk) AND #st IN ({', '.join(statuses)})",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=aws.to_values(values),
        ReturnValues="ALL_NEW",
    )
    if answer is None:
        raise _moved(campaign, "changed")
    updated = aws.from_item(answer["Attributes"])
    if "list_id" in fields and campaign.get("index_sk"):
        account_id, _ = keys.split_campaign_pk(campaign["pk"])
        aws.dynamodb().update_item(
            TableName=_table(),
            Key=aws.to_item({"pk": keys.campaigns_index_pk(account_id), "sk": campaign["index_sk"]}),
            UpdateExpression="SET list_id = :list",
            ExpressionAttributeValues=aws.to_values({":list": fields["list_id"]}),
        )
    return updated


def delete_campaign(campaign: dict[str, Any], allowed: frozenset[CampaignStatus]) -> None:
    """Delete the campaign's META if its status is still one of `allowed`, then its index item. Its
    deliveries stay until their retention ends (DynamoDB TTL)."""
    values = {f":s{i}": status.value for i, status in enumerate(sorted(allowed))}
    deleted = aws.write_if(
        aws.dynamodb().delete_item,
        TableName=_table(),
        Key=aws.to_item({"pk": campaign["pk"], "sk": keys.META}),
        ConditionExpression=f"attribute_exists(pk) AND #st IN ({', '.join(values)})",
        ExpressionAttributeNames={"#st": "status"},
        ExpressionAttributeValues=aws.to_values(values),
    )
    if deleted is None:
        raise _moved(campaign, "deleted")
    if campaign.get("index_sk"):
        account_id, _ = keys.split_campaign_pk(campaign["pk"])
        aws.dynamodb().delete_item(
            TableName=_table(),
            Key=aws.to_item({"pk": keys.campaigns_index_pk(account_id), "sk": campaign["index_sk"]}),
        )


def _moved(campaign: dict[str, Any], verb: str) -> Exception:
    """The error for a conditional write that found the campaign gone or in another status by now."""
    status = campaigns.get_status(campaign["pk"])
    if status is None:
        return NotFound(detail=f"campaign {campaign['id']} does not exist")
    return Conflict(
        detail=f"the campaign is {status} now and cannot be {verb}",
        errors=[FieldError("status", f"is {status}")],
    )
