"""Export jobs: their item in the main table, their queue, and the multipart upload of their CSV.

An export is `pending` until the worker takes it, `running` while it writes, then `completed` or
`failed`. The worker holds a lease while it runs; each part it uploads is recorded with the cursor
where the part ends, so a worker that stops (time budget, crash) is followed by one that resumes at
the last recorded part, in the same multipart upload.
"""

from __future__ import annotations

import json
import time
from typing import Any

from chalicelib.domain.errors import NotFound
from chalicelib.settings import get_settings
from chalicelib.store import aws, keys, objects, queue

PENDING, RUNNING, COMPLETED, FAILED = "pending", "running", "completed", "failed"


def _table() -> str:
    return get_settings().main_table


def _key(pk: str) -> dict[str, Any]:
    return aws.to_item({"pk": pk, "sk": keys.META})


def create_export(account_id: str, kind: str, source_id: str) -> dict[str, Any]:
    """Write a pending export of a list or a campaign and queue it for the worker."""
    export_id = keys.new_id("exp")
    now = time.time()
    pk = keys.export_pk(account_id, export_id)
    item: dict[str, Any] = {
        "pk": pk,
        "sk": keys.META,
        "id": export_id,
        "account_id": account_id,
        "kind": kind,
        "source_id": source_id,
        "state": PENDING,
        "rows": 0,
        "parts": [],
        "object_key": keys.export_object_key(account_id, export_id),
        "created_at": now,
        "updated_at": now,
    }
    aws.dynamodb().put_item(TableName=_table(), Item=aws.to_item(item))
    try:
        queue_export(account_id, export_id)
    except Exception:
        fail(pk, "could not be queued; create the export again")
        raise
    return item


def queue_export(account_id: str, export_id: str) -> None:
    body = json.dumps({"account": account_id, "export": export_id})
    queue.send_messages(get_settings().export_queue_url, [(body, 0)])


def get_export(account_id: str, export_id: str) -> dict[str, Any]:
    found = aws.dynamodb().get_item(
        TableName=_table(), Key=_key(keys.export_pk(account_id, export_id)), ConsistentRead=True
    )
    if "Item" not in found:
        raise NotFound(detail=f"export {export_id} does not exist")
    return aws.from_item(found["Item"])


def take_lease(pk: str, now: float, seconds: float) -> dict[str, Any] | None:
    """Take the export to run it (pending, or running with a lapsed lease); the item, or None when it is
    finished or another worker holds it."""
    answer = aws.write_if(
        aws.dynamodb().update_item,
        TableName=_table(),
        Key=_key(pk),
        UpdateExpression="SET #s = :running, lease = :until, updated_at = :now",
        ConditionExpression="(#s = :pending OR #s = :running) AND (attribute_not_exists(lease) OR lease < :now)",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues=aws.to_values(
            {":running": RUNNING, ":pending": PENDING, ":until": now + seconds, ":now": now}
        ),
        ReturnValues="ALL_NEW",
    )
    return aws.from_item(answer["Attributes"]) if answer else None


def _held(
    pk: str, lease: float, sets: str, values: dict[str, Any], names: dict[str, str] | None = None, remove: str = ""
) -> bool:
    """An update (`SET sets`, then `REMOVE remove`) made only while holding the lease; False when it was lost."""
    answer = aws.write_if(
        aws.dynamodb().update_item,
        TableName=_table(),
        Key=_key(pk),
        UpdateExpression=f"SET {sets}, updated_at = :now" + (f" REMOVE {remove}" if remove else ""),
        ConditionExpression="lease = :lease",
        **({"ExpressionAttributeNames": names} if names else {}),
        ExpressionAttributeValues=aws.to_values({**values, ":lease": lease, ":now": time.time()}),
    )
    return answer is not None


def save_start(pk: str, lease: float, upload_id: str, columns: list[str]) -> bool:
    """Record the multipart upload and the CSV's columns (fixed for every part)."""
    return _held(pk, lease, "upload_id = :u, #c = :c", {":u": upload_id, ":c": columns}, {"#c": "columns"})


def save_part(pk: str, lease: float, part: tuple[int, str], cursor: str | None, rows: int) -> bool:
    """Record an uploaded part, the cursor where it ends and the rows written so far."""
    return _held(
        pk,
        lease,
        "parts = list_append(parts, :p), #cur = :cur, #r = :rows",
        {":p": [{"n": part[0], "etag": part[1]}], ":cur": cursor or "", ":rows": rows},
        {"#cur": "cursor", "#r": "rows"},
    )


def give_back(pk: str, lease: float) -> bool:
    """End the lease early so a continuation can take the export at once."""
    return _held(pk, lease, "lease = :zero", {":zero": 0})


def complete(pk: str, lease: float, rows: int) -> bool:
    return _held(
        pk,
        lease,
        "#s = :done, #r = :rows, completed_at = :at",
        {":done": COMPLETED, ":rows": rows, ":at": time.time()},
        {"#s": "state", "#r": "rows"},
        remove="lease, upload_id",
    )


def fail(pk: str, error: str) -> None:
    """Mark the export failed, unless it completed meanwhile."""
    aws.write_if(
        aws.dynamodb().update_item,
        TableName=_table(),
        Key=_key(pk),
        UpdateExpression="SET #s = :failed, #e = :error, updated_at = :now REMOVE lease",
        ConditionExpression="attribute_exists(pk) AND #s <> :done",
        ExpressionAttributeNames={"#s": "state", "#e": "error"},
        ExpressionAttributeValues=aws.to_values(
            {":failed": FAILED, ":error": error[:500], ":now": time.time(), ":done": COMPLETED}
        ),
    )


# --- the object -----------------------------------------------------------------------------------


def start_upload(key: str) -> str:
    answer = objects.s3().create_multipart_upload(
        Bucket=objects.bucket(), Key=key, ContentType="text/csv; charset=utf-8"
    )
    return str(answer["UploadId"])


def upload_part(key: str, upload_id: str, number: int, data: bytes) -> tuple[int, str]:
    answer = objects.s3().upload_part(
        Bucket=objects.bucket(), Key=key, UploadId=upload_id, PartNumber=number, Body=data
    )
    return number, str(answer["ETag"])


def finish_upload(key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
    objects.complete_multipart(key, upload_id, parts)


def abort_upload(key: str, upload_id: str) -> None:
    objects.s3().abort_multipart_upload(Bucket=objects.bucket(), Key=key, UploadId=upload_id)


def download_url(key: str, filename: str) -> str:
    return objects.presign_get(key, get_settings().export_url_seconds, filename)
