"""Erasures (decision 42): the audit log, one item per erasure, `<account>#ERASURES` / `<erasure id>`, and the
reads and writes the erasure job makes over the account's items and objects.

The audit item never holds the person's address or recipient id: `subject` is their keyed hash
(suppressions.address_key). The job's message carries them in clear (SQS, encrypted at rest, deleted once
the job is done), since finding them in lists and deliveries needs them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from chalicelib.domain.errors import NotFound
from chalicelib.settings import get_settings
from chalicelib.store import aws, keys, objects, queue

PENDING, RUNNING, WAITING, COMPLETED = "pending", "running", "waiting", "completed"
# The S3 prefixes an account's objects are under: the event log, exports, uploaded files and rejected rows.
OBJECT_PREFIXES = ("events", "exports", "uploads", "rejects")


def _table() -> str:
    return get_settings().main_table


def erasures_pk(account_id: str) -> str:
    return f"{account_id}#ERASURES"


def create(account_id: str, erasure_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    item = {
        "pk": erasures_pk(account_id),
        "sk": erasure_id,
        "id": erasure_id,
        "status": PENDING,
        "counts": {},
        "runs": 0,
        "created_at": time.time(),
        **fields,
    }
    aws.dynamodb().put_item(TableName=_table(), Item=aws.to_item(item), ConditionExpression="attribute_not_exists(pk)")
    return item


def get(account_id: str, erasure_id: str) -> dict[str, Any]:
    found = aws.dynamodb().get_item(
        TableName=_table(), Key=aws.to_item({"pk": erasures_pk(account_id), "sk": erasure_id}), ConsistentRead=True
    )
    if "Item" not in found:
        raise NotFound(detail=f"erasure {erasure_id} does not exist")
    return aws.from_item(found["Item"])


def page(account_id: str, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    return aws.partition_page(_table(), erasures_pk(account_id), after=after, limit=limit)


def record_run(account_id: str, erasure_id: str, status: str, counts: dict[str, int], **fields: Any) -> None:
    """Add a run's counts (items and objects it changed, by table or kind) and set the status. A run that
    changed nothing adds zeros, so a redelivered job leaves the counts as they were."""
    names: dict[str, str] = {"#s": "status"}
    values: dict[str, Any] = {":s": status, ":now": time.time(), ":one": 1}
    sets = ["#s = :s", "updated_at = :now"]
    for i, (name, value) in enumerate(sorted(fields.items())):
        names[f"#f{i}"], values[f":f{i}"] = name, value
        sets.append(f"#f{i} = :f{i}")
    adds = ["runs :one"]
    for i, (name, value) in enumerate(sorted(counts.items())):
        if value:
            names[f"#c{i}"], values[f":c{i}"] = name, value
            adds.append(f"counts.#c{i} :c{i}")
    aws.dynamodb().update_item(
        TableName=_table(),
        Key=aws.to_item({"pk": erasures_pk(account_id), "sk": erasure_id}),
        UpdateExpression=f"SET {', '.join(sets)} ADD {', '.join(adds)}",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=aws.to_values(values),
    )


def send_job(body: dict[str, Any], delay: int = 0) -> None:
    queue.send_messages(get_settings().erasure_queue_url, [(queue.encode(body), delay)])


# --- what the job reads and writes --------------------------------------------------------------------


def partition(pk: str, *, table: str | None = None, prefix: str | None = None) -> Iterator[dict[str, Any]]:
    """Every item of one partition (of the main table unless `table`), optionally under a sort key prefix."""
    params: dict[str, Any] = {
        "TableName": table or _table(),
        "KeyConditionExpression": "pk = :pk" + (" AND begins_with(sk, :p)" if prefix else ""),
        "ExpressionAttributeValues": aws.to_values({":pk": pk, **({":p": prefix} if prefix else {})}),
        "ConsistentRead": True,
    }
    for item in aws.query_all(params):
        yield aws.from_item(item)


def list_ids(account_id: str) -> list[str]:
    return [str(item["id"]) for item in partition(keys.lists_index_pk(account_id))]


def campaigns(account_id: str) -> list[dict[str, Any]]:
    """The account's campaigns' own items (key, buckets, category, status, segment policy), from the campaign index."""
    ids = [str(item["id"]) for item in partition(keys.campaigns_index_pk(account_id))]
    wanted = [{"pk": keys.campaign_pk(account_id, i), "sk": keys.META} for i in ids]
    names = {"#p": "pk", "#b": "buckets", "#c": "category", "#s": "status", "#g": "segment_policy"}
    return aws.batch_get(_table(), wanted, projection="#p, #b, #c, #s, #g", names=names) if wanted else []


def deliveries_table() -> str:
    return get_settings().deliveries_table


def put_new(item: dict[str, Any], table: str | None = None) -> bool:
    """Put an item that is not there yet (in the main table unless `table`); False when it is (a second run)."""
    written = aws.write_if(
        aws.dynamodb().put_item,
        TableName=table or _table(),
        Item=aws.to_item(item),
        ConditionExpression="attribute_not_exists(pk)",
    )
    return written is not None


def put(item: dict[str, Any], table: str | None = None) -> None:
    """Put an item (over the one there, if any)."""
    aws.dynamodb().put_item(TableName=table or _table(), Item=aws.to_item(item))


def delete(pk: str, sk: str, table: str | None = None, condition: dict[str, Any] | None = None) -> bool:
    """Delete an item if it is there (and `condition` holds: ConditionExpression and its values); whether it was."""
    expression = "attribute_exists(pk)"
    extra: dict[str, Any] = {}
    if condition:
        expression += f" AND ({condition['expression']})"
        extra["ExpressionAttributeValues"] = aws.to_values(condition["values"])
        if condition.get("names"):
            extra["ExpressionAttributeNames"] = condition["names"]
    gone = aws.write_if(
        aws.dynamodb().delete_item,
        TableName=table or _table(),
        Key=aws.to_item({"pk": pk, "sk": sk}),
        ConditionExpression=expression,
        **extra,
    )
    return gone is not None


def replace(item: dict[str, Any], version: dict[str, Any], table: str | None = None) -> bool:
    """Put `item` over the one read, if it is still as read (its attribute `version` map: name -> value)."""
    names = {f"#v{i}": name for i, name in enumerate(version)}
    values = {f":v{i}": value for i, value in enumerate(version.values())}
    condition = " AND ".join(f"#v{i} = :v{i}" for i in range(len(version))) or "attribute_exists(pk)"
    written = aws.write_if(
        aws.dynamodb().put_item,
        TableName=table or _table(),
        Item=aws.to_item(item),
        ConditionExpression=condition,
        **({"ExpressionAttributeNames": names, "ExpressionAttributeValues": aws.to_values(values)} if names else {}),
    )
    return written is not None


def object_keys(account_id: str) -> Iterator[str]:
    """Every object of the account, prefix after prefix."""
    for prefix in OBJECT_PREFIXES:
        params: dict[str, Any] = {"Bucket": objects.bucket(), "Prefix": f"{prefix}/{account_id}/"}
        while True:
            answer = objects.s3().list_objects_v2(**params)
            for item in answer.get("Contents", []):
                yield str(item["Key"])
            if not answer.get("IsTruncated"):
                break
            params["ContinuationToken"] = answer["NextContinuationToken"]


def read_object(key: str) -> tuple[bytes, str]:
    answer = objects.s3().get_object(Bucket=objects.bucket(), Key=key)
    return answer["Body"].read(), str(answer.get("ContentType") or "application/octet-stream")


def put_object(key: str, body: bytes, content_type: str) -> None:
    objects.s3().put_object(Bucket=objects.bucket(), Key=key, Body=body, ContentType=content_type)


def delete_object(key: str) -> None:
    objects.s3().delete_object(Bucket=objects.bucket(), Key=key)
