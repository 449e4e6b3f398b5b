"""Uploads in the main table: the upload item, the once-per-object marker, and the rejected rows.

- Upload: `pk = list_pk(account, list)`, `sk = U#<upload_id>`. It holds the current ingest run (`run`,
  the ETag being ingested), its checkpoint (`resume`, `line`) and its counters. Every write of a run is
  conditional on `run` (and a checkpoint on the previous `resume`), so a worker that lost a race or
  reads a replaced object changes nothing.
- Marker: `sk = U#<upload_id>#O#<key hash>#<etag>`, put only if absent: an object (key + ETag) is
  ingested once, however often S3 notifies; `started` is set once its run has begun.
- Segment (a large CSV ingested in parallel): `sk = U#<upload_id>#S#<etag>#<n, 6 digits>`, the byte range
  [start, end) of whole records that one worker ingests, with its own checkpoint and counters. The upload
  item then holds the planner's position (`resume`, `line`), how many segments it queued (`segment_count`) and
  whether it reached the end (`planned`); its counters are the segments' sums, written on completion.
- Rejected rows: `pk = <list_pk>#U#<upload_id>`, `sk = <etag>#<line, 12 digits>`: written by line
  number, so writing a batch's rejects twice leaves them as once; read back in line order.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

from chalicelib.domain.uploads import UploadState
from chalicelib.settings import get_settings
from chalicelib.store import aws, keys

UPLOAD_PREFIX = "U#"
COUNTERS = ("rows_read", "accepted", "invalid", "duplicates")


def _key(account_id: str, list_id: str, upload_id: str) -> dict[str, Any]:
    return aws.to_item({"pk": keys.list_pk(account_id, list_id), "sk": f"{UPLOAD_PREFIX}{upload_id}"})


def _new_upload(account_id: str, list_id: str, upload_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "pk": keys.list_pk(account_id, list_id),
        "sk": f"{UPLOAD_PREFIX}{upload_id}",
        "id": upload_id,
        "account_id": account_id,
        "list_id": list_id,
        "state": UploadState.AWAITING_FILE.value,
        "created_at": time.time(),
        **{name: 0 for name in COUNTERS},
        **fields,
    }


def create_upload(account_id: str, list_id: str, upload_id: str, **fields: Any) -> dict[str, Any]:
    """A new upload awaiting its file (its id is new: the put is unconditional)."""
    item = _new_upload(account_id, list_id, upload_id, fields)
    aws.dynamodb().put_item(TableName=get_settings().main_table, Item=aws.to_item(item))
    return item


def ensure_upload(account_id: str, list_id: str, upload_id: str, **fields: Any) -> dict[str, Any]:
    """The upload, created (if absent) for an object put into the bucket without one."""
    item = _new_upload(account_id, list_id, upload_id, fields)
    aws.write_if(
        aws.dynamodb().put_item,
        TableName=get_settings().main_table,
        Item=aws.to_item(item),
        ConditionExpression="attribute_not_exists(pk)",
    )
    found = get_upload(account_id, list_id, upload_id)
    assert found is not None
    return found


def get_upload(account_id: str, list_id: str, upload_id: str) -> dict[str, Any] | None:
    found = aws.dynamodb().get_item(
        TableName=get_settings().main_table, Key=_key(account_id, list_id, upload_id), ConsistentRead=True
    )
    return aws.from_item(found["Item"]) if "Item" in found else None


def claim_object(account_id: str, list_id: str, upload_id: str, key: str, etag: str) -> dict[str, Any] | None:
    """Put the object's once-marker; None when this call created it, else the marker that was there."""
    table = get_settings().main_table
    item: dict[str, Any] = {"pk": keys.list_pk(account_id, list_id), "sk": _marker_sk(upload_id, key, etag)}
    item.update(key=key, claimed_at=time.time())
    written = aws.write_if(
        aws.dynamodb().put_item, TableName=table, Item=aws.to_item(item), ConditionExpression="attribute_not_exists(pk)"
    )
    if written is not None:
        return None
    found = aws.dynamodb().get_item(
        TableName=table, Key=aws.to_item({"pk": item["pk"], "sk": item["sk"]}), ConsistentRead=True
    )
    return aws.from_item(found.get("Item") or {})


def mark_started(account_id: str, list_id: str, upload_id: str, key: str, etag: str) -> None:
    aws.dynamodb().update_item(
        TableName=get_settings().main_table,
        Key=aws.to_item({"pk": keys.list_pk(account_id, list_id), "sk": _marker_sk(upload_id, key, etag)}),
        UpdateExpression="SET started = :t",
        ExpressionAttributeValues=aws.to_values({":t": True}),
    )


def _marker_sk(upload_id: str, key: str, etag: str) -> str:
    digest = hashlib.blake2b(key.encode(), digest_size=10).hexdigest()
    return f"{UPLOAD_PREFIX}{upload_id}#O#{digest}#{etag}"


def start_run(
    upload: dict[str, Any],
    etag: str,
    *,
    layout: dict[str, Any],
    mapping: dict[str, Any],
    resume: int,
    line: int,
    segmented: bool = False,
) -> bool:
    """Begin ingesting object version `etag`: counters to zero, checkpoint at the first data record.
    `segmented`: the object is split into segments ingested in parallel (the checkpoint is then the
    planner's). False when this run had already begun (another delivery of the same notification)."""
    values = {
        ":segmented": segmented,
        ":etag": etag,
        ":ingesting": UploadState.INGESTING.value,
        ":layout": layout,
        ":mapping": mapping,
        ":resume": resume,
        ":line": line,
        ":zero": 0,
        ":now": time.time(),
    }
    return _update(
        upload,
        "SET #run = :etag, #state = :ingesting, layout = :layout, effective_mapping = :mapping, #resume = :resume, "
        "line = :line, rows_read = :zero, accepted = :zero, invalid = :zero, duplicates = :zero, started_at = :now, "
        "segmented = :segmented, segment_count = :zero "
        "REMOVE #error, finished_at, rejects_key, planned",
        "attribute_not_exists(#run) OR #run <> :etag",
        values,
    )


def checkpoint(
    upload: dict[str, Any], etag: str, *, after: int, resume: int, line: int, counts: dict[str, int]
) -> bool:
    """Move the run's checkpoint from `after` to `resume` and add the batch's counts, in one conditional
    update; False (nothing changed) when the run is not at `after` any more."""
    values: dict[str, Any] = {
        ":etag": etag,
        ":after": after,
        ":resume": resume,
        ":line": line,
        ":ingesting": UploadState.INGESTING.value,
    }
    adds = []
    for name in COUNTERS:
        values[f":{name}"] = int(counts.get(name, 0))
        adds.append(f"{name} :{name}")
    return _update(
        upload,
        "SET #resume = :resume, line = :line ADD " + ", ".join(adds),
        "#run = :etag AND #resume = :after AND #state = :ingesting",
        values,
    )


def finish_run(
    upload: dict[str, Any], etag: str, *, at: int | None, rejects_key: str | None, totals: dict[str, int] | None = None
) -> bool:
    """The run read the whole object: completed (with its rejected rows' file, if any). `at`: where the
    checkpoint must stand; None for a segmented run, which must be planned to the end, its counters then
    set to the segments' `totals`."""
    values: dict[str, Any] = {
        ":etag": etag,
        ":ingesting": UploadState.INGESTING.value,
        ":completed": UploadState.COMPLETED.value,
        ":now": time.time(),
    }
    update = "SET #state = :completed, finished_at = :now"
    condition = "#run = :etag AND #state = :ingesting AND "
    if at is None:
        condition += "planned = :yes"
        values[":yes"] = True
    else:
        condition += "#resume = :at"
        values[":at"] = at
    for name, total in (totals or {}).items():
        values[f":{name}"] = total
        update += f", {name} = :{name}"
    if rejects_key:
        values[":rejects"] = rejects_key
        update += ", rejects_key = :rejects"
    return _update(upload, update, condition, values)


def fail_run(upload: dict[str, Any], etag: str, *, code: str, detail: str) -> bool:
    """The object cannot be ingested as a whole: failed with {code, detail}. Allowed when the run is this
    object's and not finished, or when no run of this object began."""
    values = {
        ":etag": etag,
        ":failed": UploadState.FAILED.value,
        ":ingesting": UploadState.INGESTING.value,
        ":error": {"code": code, "detail": detail},
        ":now": time.time(),
    }
    return _update(
        upload,
        "SET #run = :etag, #state = :failed, #error = :error, finished_at = :now",
        "attribute_not_exists(#run) OR #run <> :etag OR #state = :ingesting",
        values,
    )


def _update(upload: dict[str, Any], expression: str, condition: str, values: dict[str, Any]) -> bool:
    names = {"#run": "run", "#state": "state", "#resume": "resume", "#error": "error"}
    used = {name: attribute for name, attribute in names.items() if name in expression or name in condition}
    answer = aws.write_if(
        aws.dynamodb().update_item,
        TableName=get_settings().main_table,
        Key=_key(upload["account_id"], upload["list_id"], upload["id"]),
        UpdateExpression=expression,
        ConditionExpression=condition,
        ExpressionAttributeNames=used,
        ExpressionAttributeValues=aws.to_values(values),
    )
    return answer is not None


# --- segments (a large CSV ingested in parallel) ----------------------------------------------------


def plan_segment(upload: dict[str, Any], etag: str, *, after: int, resume: int, line: int) -> bool:
    """The planner queued the segment that ends at `resume`: its position moves there from `after`."""
    values = {":etag": etag, ":after": after, ":resume": resume, ":line": line, ":one": 1}
    values[":ingesting"] = UploadState.INGESTING.value
    return _update(
        upload,
        "SET #resume = :resume, line = :line ADD segment_count :one",
        "#run = :etag AND #resume = :after AND #state = :ingesting",
        values,
    )


def finish_plan(upload: dict[str, Any], etag: str, *, at: int) -> bool:
    """The planner reached the end of the object: every segment is queued."""
    values = {":etag": etag, ":at": at, ":yes": True, ":ingesting": UploadState.INGESTING.value}
    return _update(upload, "SET planned = :yes", "#run = :etag AND #resume = :at AND #state = :ingesting", values)


def _segment_sk(upload: dict[str, Any], etag: str, number: int | None = None) -> str:
    prefix = f"{UPLOAD_PREFIX}{upload['id']}#S#{etag}#"
    return prefix if number is None else f"{prefix}{number:06d}"


def _segment_key(upload: dict[str, Any], etag: str, number: int) -> dict[str, Any]:
    return aws.to_item(
        {"pk": keys.list_pk(upload["account_id"], upload["list_id"]), "sk": _segment_sk(upload, etag, number)}
    )


def put_segment(upload: dict[str, Any], etag: str, number: int, *, start: int, end: int, line: int) -> None:
    """Segment `number` covers the records in bytes [start, end); put once (a planner that runs again after a
    crash finds it, with whatever progress it made)."""
    item = {
        "pk": keys.list_pk(upload["account_id"], upload["list_id"]),
        "sk": _segment_sk(upload, etag, number),
        "number": number,
        "start": start,
        "end": end,
        "resume": start,
        "line": line,
        "done": False,
        **{name: 0 for name in COUNTERS},
    }
    aws.write_if(
        aws.dynamodb().put_item,
        TableName=get_settings().main_table,
        Item=aws.to_item(item),
        ConditionExpression="attribute_not_exists(pk)",
    )


def get_segment(upload: dict[str, Any], etag: str, number: int) -> dict[str, Any] | None:
    found = aws.dynamodb().get_item(
        TableName=get_settings().main_table, Key=_segment_key(upload, etag, number), ConsistentRead=True
    )
    return aws.from_item(found["Item"]) if "Item" in found else None


def segment_checkpoint(
    upload: dict[str, Any],
    etag: str,
    number: int,
    *,
    after: int,
    resume: int,
    line: int,
    counts: dict[str, int],
    done: bool,
) -> bool:
    """`checkpoint` for one segment: from `after` to `resume`, adding the batch's counts (and marking the
    segment done at its end) in one conditional update of the segment's item."""
    values: dict[str, Any] = {":after": after, ":resume": resume, ":line": line, ":done": done, ":no": False}
    adds = []
    for name in COUNTERS:
        values[f":{name}"] = int(counts.get(name, 0))
        adds.append(f"{name} :{name}")
    answer = aws.write_if(
        aws.dynamodb().update_item,
        TableName=get_settings().main_table,
        Key=_segment_key(upload, etag, number),
        UpdateExpression="SET #resume = :resume, line = :line, done = :done ADD " + ", ".join(adds),
        ConditionExpression="#resume = :after AND done = :no",
        ExpressionAttributeNames={"#resume": "resume"},
        ExpressionAttributeValues=aws.to_values(values),
    )
    return answer is not None


def segments(upload: dict[str, Any], etag: str) -> list[dict[str, Any]]:
    """The run's segments in order (a consistent Query: a segment that just finished is seen)."""
    query = {
        "TableName": get_settings().main_table,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": aws.to_values(
            {":pk": keys.list_pk(upload["account_id"], upload["list_id"]), ":prefix": _segment_sk(upload, etag)}
        ),
        "ConsistentRead": True,
    }
    return [aws.from_item(item) for item in aws.query_all(query)]


def with_segment_totals(upload: dict[str, Any]) -> dict[str, Any]:
    """The upload with its counters as its segments' sums while a segmented run is going (on completion they
    are written on the upload itself), and `segments_done`."""
    if not upload.get("segmented") or upload.get("state") != UploadState.INGESTING.value:
        return upload
    found = segments(upload, str(upload["run"]))
    return {**upload, **segment_totals(found), "segments_done": sum(1 for s in found if s.get("done"))}


def segment_totals(found: list[dict[str, Any]]) -> dict[str, int]:
    """The upload's counters as the sums of its segments'."""
    return {name: sum(int(s.get(name, 0)) for s in found) for name in COUNTERS}


# --- rejected rows ---------------------------------------------------------------------------------


def _rejects_pk(upload: dict[str, Any]) -> str:
    return f"{keys.list_pk(upload['account_id'], upload['list_id'])}#U#{upload['id']}"


def put_rejects(upload: dict[str, Any], etag: str, rows: list[dict[str, Any]]) -> None:
    """Store rejected rows ({line, reason, field, detail}), keyed by line: idempotent."""
    pk = _rejects_pk(upload)
    aws.batch_put(get_settings().main_table, [{"pk": pk, "sk": f"{etag}#{row['line']:012d}", **row} for row in rows])


def rejects(upload: dict[str, Any], etag: str) -> Iterator[dict[str, Any]]:
    """The run's rejected rows in line order (a paged Query)."""
    query = {
        "TableName": get_settings().main_table,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :run)",
        "ExpressionAttributeValues": aws.to_values({":pk": _rejects_pk(upload), ":run": f"{etag}#"}),
    }
    for item in aws.query_all(query):
        yield aws.from_item(item)
