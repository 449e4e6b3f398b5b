"""Ingest an uploaded object (CSV or XLSX) into its list: streamed, checkpointed, exactly once.

One call handles one object version (key + ETag) for as long as the invocation's time allows:

1. Decide. The object must still be that version (HEAD), else the notification is stale. An upload
   already running this ETag is resumed from its checkpoint; a finished one is left alone. Otherwise
   the once-marker of key + ETag is put conditionally: a second notification of the same object finds
   it and changes nothing, while the same key with a new ETag is a new ingest of the same upload.
2. Start. The layout is read from the first HEAD_BYTES (XLSX: through a seekable file over ranged
   GETs); a file that cannot be read as a whole fails the upload with {code, detail}. Else the run
   begins with its checkpoint at the first data record (conditional on the run not having begun).
3. Batches of BATCH_ROWS records, read from the checkpoint over 16 MiB ranged GETs (never the whole
   object in memory): each record goes through tabular.to_row and recipients.check_row; rejected
   rows are stored by line number (up to MAX_REPORTED_REJECTS), valid ones go through
   lists.put_recipients_in_batches tagged with the batch's origin; then one conditional update moves the
   checkpoint from the batch's start to its end and adds the batch's counts.
4. Out of time (under DEADLINE_MARGIN_MS left): a continuation message is queued and the call
   returns. At the end: the rejected rows are written as one CSV and the upload is completed.

Why every row and every count lands exactly once:
- The checkpoint and the counters move in one conditional update (`resume = <batch start>`): a
  batch's counts are added exactly when its checkpoint advances, never twice, and a worker that
  lost a race (duplicate delivery) fails the condition and stops.
- A batch's counts are a function of the file and the batch's start alone: batches are cut at fixed
  record counts (the clock is read only between batches), repeated ids within a batch are counted
  as duplicates before any write, and each list item carries its batch's origin
  (`upload:etag:start`), so when a batch runs again after a crash between its writes and its
  checkpoint, rows its first attempt wrote are found with the same origin and counted as accepted
  again (and not added to the list's count again), not as duplicates.
- Rejected rows are keyed by line number, so writing them again overwrites them with themselves.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from chalicelib.domain import suppression_imports, tabular
from chalicelib.domain.errors import NotFound
from chalicelib.domain.recipients import Recipient, RowError, check_row
from chalicelib.domain.suppression_imports import SUPPRESSIONS_TARGET, SuppressionColumns
from chalicelib.domain.tabular import Cells, ColumnMapping, FileProblem, Layout
from chalicelib.domain.uploads import (
    MAX_UPLOAD_BYTES,
    UploadState,
    format_of,
    parse_key,
    rejects_key,
)
from chalicelib.observability import logger
from chalicelib.operations import late_recipients
from chalicelib.settings import get_settings
from chalicelib.store import lists, objects, queue, suppressions, uploads

BATCH_ROWS = 2000
DEADLINE_MARGIN_MS = 60_000
# Rejected rows reported per ingest; all of them are counted (`invalid`).
MAX_REPORTED_REJECTS = 100_000
MAX_DETAIL = 300
REJECTS_HEADER = ["line", "reason", "field", "detail"]


class Deadline:
    """The invocation's time left, from Lambda's context (no context: unlimited)."""

    def __init__(self, context: Any) -> None:
        self.context = context

    def near(self) -> bool:
        if self.context is None or not hasattr(self.context, "get_remaining_time_in_millis"):
            return False
        return bool(self.context.get_remaining_time_in_millis() < DEADLINE_MARGIN_MS)


def continuation(key: str, etag: str, at: dict[str, Any] | None = None, segment: int | None = None) -> dict[str, Any]:
    """The message that asks the ingest worker to go on with an object, or with one of its segments (where it
    stopped is on the upload or the segment; `at` is that item, its position copied for the logs)."""
    body: dict[str, Any] = {"bucket": objects.bucket(), "key": key, "etag": etag}
    if segment is not None:
        body["segment"] = segment
    if at is not None:
        body.update(offset=at.get("resume"), line=at.get("line"))
    return {"ingest": body}


def queue_object(key: str, etag: str, at: dict[str, Any] | None = None, segment: int | None = None) -> None:
    body = queue.encode(continuation(key, etag, at, segment))
    queue.send_messages(get_settings().ingest_queue_url, [(body, 0)])


def ingest_object(key: str, etag: str, context: Any, segment: int | None = None) -> str:
    """Ingest (or go on ingesting) one object version, or one segment of it; what happened, for logs and tests."""
    where = parse_key(key)
    if where is None:
        logger.warning("object key is not an upload's; skipped", extra={"key": key})
        return "skipped: not an upload key"
    try:
        head = objects.head(key)
    except objects.ObjectMissing:
        return "skipped: object gone"
    if head.etag != etag:
        return "skipped: object replaced since"
    suppressing = where.list_id == SUPPRESSIONS_TARGET
    if not suppressing:
        try:
            lists.get_list(where.account_id, where.list_id)
        except NotFound:
            logger.warning("upload for an unknown list; skipped", extra={"key": key})
            return "skipped: no such list"

    upload = uploads.get_upload(where.account_id, where.list_id, where.upload_id)
    if upload is None and suppressing:  # an import is made through the API, with its channel
        logger.warning("object for no suppression import; skipped", extra={"key": key})
        return "skipped: no such suppression import"
    if upload is None:
        upload = uploads.ensure_upload(
            where.account_id,
            where.list_id,
            where.upload_id,
            key=key,
            filename=where.filename,
            format=format_of(where.filename),
            size_bytes=head.size,
            dropped=True,
        )
    if upload.get("run") == etag:
        if upload["state"] != UploadState.INGESTING:
            return "skipped: already ingested"
        return _go_on(upload, key, etag, head.size, Deadline(context), segment)

    marker = uploads.claim_object(where.account_id, where.list_id, where.upload_id, key, etag)
    if marker is not None and marker.get("started"):
        return "skipped: already ingested"
    started = _start(upload, key, etag, head.size)
    uploads.mark_started(where.account_id, where.list_id, where.upload_id, key, etag)
    if started is None:
        return "failed"
    return _go_on(started, key, etag, head.size, Deadline(context), None)


def _go_on(upload: dict[str, Any], key: str, etag: str, size: int, deadline: Deadline, segment: int | None) -> str:
    """Read on from the checkpoint: the whole object, or (segmented) the plan or one segment."""
    if not upload.get("segmented"):
        return _run(upload, key, etag, size, deadline, Part.whole(upload))
    if segment is not None:
        found = uploads.get_segment(upload, etag, segment)
        if found is None or found.get("done"):
            return "skipped: segment done"
        return _run(upload, key, etag, size, deadline, Part.of_segment(found))
    if upload.get("planned"):
        return _finish_segmented(upload, key, etag)
    return _plan(upload, key, etag, size, deadline)


def _start(upload: dict[str, Any], key: str, etag: str, size: int) -> dict[str, Any] | None:
    """Read the layout and begin the run; None when the file is refused as a whole."""
    try:
        layout, mapping = _layout_and_mapping(upload, key, etag, size)
        suppressing = upload.get("target") == SUPPRESSIONS_TARGET
    except FileProblem as problem:
        uploads.fail_run(upload, etag, code=problem.code, detail=problem.detail)
        logger.info("upload refused", extra={"upload": upload["id"], "code": problem.code})
        return None
    began = uploads.start_run(
        upload,
        etag,
        layout=asdict(layout),
        mapping=mapping,
        resume=layout.data_start,
        line=layout.first_line,
        segmented=not suppressing and layout.format == "csv" and size > get_settings().ingest_segment_bytes,
    )
    if not began:
        logger.info("run already begun by another delivery; resuming", extra={"upload": upload["id"]})
    fresh = uploads.get_upload(upload["account_id"], upload["list_id"], upload["id"])
    assert fresh is not None
    return fresh


def _layout_and_mapping(upload: dict[str, Any], key: str, etag: str, size: int) -> tuple[Layout, dict[str, Any]]:
    """The file's layout, and which columns hold what (a list's ColumnMapping, or an import's columns)."""
    if size > MAX_UPLOAD_BYTES:
        raise FileProblem("too_large", f"the file has {size:,} bytes; at most {MAX_UPLOAD_BYTES:,} are accepted")
    kind = upload.get("format") or format_of(key) or "csv"
    if kind == "xlsx":
        layout = tabular.xlsx_layout(objects.open_object(key, etag, size))
    else:
        layout = tabular.csv_layout(objects.read_range(key, etag, 0, tabular.HEAD_BYTES))
    if upload.get("target") == SUPPRESSIONS_TARGET:
        return layout, asdict(suppression_imports.columns(layout.header))
    if upload.get("mapping"):
        mapping = ColumnMapping.model_validate(upload["mapping"])
        tabular.check_mapping(mapping, layout.header)
    else:
        mapping = tabular.default_mapping(layout.header)
    return layout, mapping.model_dump(mode="json")


@dataclass
class Part:
    """What one worker reads from its checkpoint: the whole object (checkpoint on the upload) or one segment
    (bytes up to `stop`, checkpoint on the segment's item)."""

    resume: int
    line: int
    invalid: int  # rejected rows reported so far
    segment: int | None = None
    stop: int | None = None

    @classmethod
    def whole(cls, upload: dict[str, Any]) -> Part:
        return cls(int(upload["resume"]), int(upload["line"]), int(upload.get("invalid", 0)))

    @classmethod
    def of_segment(cls, found: dict[str, Any]) -> Part:
        resume, line, invalid = int(found["resume"]), int(found["line"]), int(found.get("invalid", 0))
        return cls(resume, line, invalid, int(found["number"]), int(found["end"]))

    def run(self, upload: dict[str, Any], etag: str) -> str:
        """The ingest run this part's rows are written by (list counts are kept per run, in file order)."""
        suffix = "" if self.segment is None else f":{self.segment}"
        return f"{upload['id']}:{etag}{suffix}"


def _records(key: str, etag: str, size: int, layout: Layout, part: Part) -> Iterator[Cells]:
    if layout.format == "xlsx":
        return tabular.xlsx_records(objects.open_object(key, etag, size), layout, row=part.resume)
    chunks = objects.stream(key, etag, part.resume, part.stop)
    return tabular.csv_records(chunks, layout, offset=part.resume, line=part.line)


def _run(upload: dict[str, Any], key: str, etag: str, size: int, deadline: Deadline, part: Part) -> str:
    """Batches from the part's checkpoint until its end, a lost race, or the deadline."""
    layout = Layout(**upload["layout"])
    records = _records(key, etag, size, layout, part)
    suppressing = upload.get("target") == SUPPRESSIONS_TARGET
    if suppressing:
        found = SuppressionColumns(**upload["effective_mapping"])
        check = lambda batch: _check_suppressions(found, layout.header, batch, upload.get("channel"))  # noqa: E731
    else:
        mapping = ColumnMapping.model_validate(upload["effective_mapping"])
        check = lambda batch: _check(mapping, layout.header, batch)  # noqa: E731
    write = _write_suppressions if suppressing else _write_batch

    def read_and_check() -> tuple[list[Cells], Checked]:
        batch = list(itertools.islice(records, BATCH_ROWS))
        return batch, check(batch)

    # The next batch is read and checked (CPU) while this one is written (I/O): one batch ahead, so memory
    # holds two batches at most. A batch read ahead but not written when the worker stops is read again
    # from the checkpoint by whoever goes on.
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-read")
    ahead = reader.submit(read_and_check)
    try:
        first = True
        while True:
            if not first and deadline.near():
                queue_object(key, etag, asdict(part), part.segment)
                return "continued"
            first = False
            batch, checked = ahead.result()
            if len(batch) == BATCH_ROWS:
                ahead = reader.submit(read_and_check)
            start = part.resume
            counts, rejected = write(upload, etag, part, checked) if batch else ({}, [])
            room = MAX_REPORTED_REJECTS - part.invalid
            if rejected and room > 0:
                uploads.put_rejects(upload, etag, rejected[:room])
            last = batch[-1] if batch else None
            resume = last.resume if last else start
            next_line = (last.next_line or last.line + 1) if last else part.line
            done = len(batch) < BATCH_ROWS  # the records ran out: no need to queue a continuation to find it out
            if not _save(upload, etag, part, start, resume, next_line, counts, done):
                logger.info("checkpoint moved by another worker; stopping", extra={"upload": upload["id"]})
                return "superseded"
            part.resume, part.line, part.invalid = resume, next_line, part.invalid + len(rejected)
            if part.segment is None:
                upload["resume"], upload["line"] = resume, next_line
                for name, added in counts.items():
                    upload[name] = int(upload.get(name, 0)) + added
            if done:
                return _finish(upload, key, etag) if part.segment is None else _finish_segmented(upload, key, etag)
    except (objects.ObjectChanged, objects.ObjectMissing):
        return "skipped: object replaced since"
    finally:
        reader.shutdown(wait=True, cancel_futures=True)
        close = getattr(records, "close", None)
        if close is not None:
            close()


def _save(
    upload: dict[str, Any],
    etag: str,
    part: Part,
    after: int,
    resume: int,
    line: int,
    counts: dict[str, int],
    done: bool,
) -> bool:
    """Move the part's checkpoint from `after` with the batch's counts; False when another worker moved it."""
    if part.segment is None:
        if not counts and resume == after:
            return True  # an empty last batch: nothing to move
        return uploads.checkpoint(upload, etag, after=after, resume=resume, line=line, counts=counts)
    return uploads.segment_checkpoint(
        upload, etag, part.segment, after=after, resume=resume, line=line, counts=counts, done=done
    )


def _plan(upload: dict[str, Any], key: str, etag: str, size: int, deadline: Deadline) -> str:
    """Cut the object into segments of about `ingest_segment_bytes` at record boundaries, and queue each as it
    is found: the segments are ingested in parallel while the plan goes on. Each segment is put, queued, and
    only then counted on the upload (its position moving conditionally): a planner that stops anywhere in
    between puts and queues the same segment again, and the segment's own checkpoint makes that a no-op."""
    layout = Layout(**upload["layout"])
    segment_bytes = get_settings().ingest_segment_bytes
    try:
        while True:
            start, line, number = int(upload["resume"]), int(upload["line"]), int(upload.get("segment_count", 0))
            chunks = objects.stream(key, etag, start)
            try:
                found = tabular.next_boundary(chunks, layout, offset=start, line=line, at_least=start + segment_bytes)
            finally:
                chunks.close()
            end, next_line = found or (size, line)
            if end > start:
                uploads.put_segment(upload, etag, number, start=start, end=end, line=line)
                queue_object(key, etag, None, number)
                if not uploads.plan_segment(upload, etag, after=start, resume=end, line=next_line):
                    return "superseded"
                upload.update(resume=end, line=next_line, segment_count=number + 1)
            if end >= size:
                if not uploads.finish_plan(upload, etag, at=end):
                    return "superseded"
                upload["planned"] = True
                return _finish_segmented(upload, key, etag)
            if deadline.near():
                queue_object(key, etag, upload)
                return "continued"
    except (objects.ObjectChanged, objects.ObjectMissing):
        return "skipped: object replaced since"


@dataclass
class Checked:
    """A batch's rows checked: the valid ones by id, how many repeated an id earlier in the batch, and the
    rejected ones (line, reason, field, detail)."""

    rows: int = 0
    valid: dict[str, Recipient] = field(default_factory=dict)
    # A suppression import's: each (scope, destination) its valid rows suppress, with the row's detail.
    suppress: dict[tuple[str, str], str] = field(default_factory=dict)
    lines: list[list[tuple[str, str]]] = field(default_factory=list)  # each valid row's pairs
    repeated: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


def _check(mapping: ColumnMapping, header: list[str], batch: list[Cells]) -> Checked:
    checked = Checked(rows=len(batch))
    for cells in batch:
        try:
            if cells.values is None:
                raise RowError("invalid_row", "row", cells.problem or "the row cannot be read")
            recipient = check_row(tabular.to_row(mapping, header, cells.values), mapping.default_region)
        except RowError as exc:
            checked.rejected.append(_reject(cells.line, exc, _column_of(exc.field, mapping, header, cells.values)))
            continue
        if recipient.id in checked.valid:
            checked.repeated += 1
        else:
            checked.valid[recipient.id] = recipient
    return checked


def _check_suppressions(
    found: SuppressionColumns, header: list[str], batch: list[Cells], channel: str | None
) -> Checked:
    """A suppression import's batch checked: each valid row's (scope, destination) pairs; a row whose pairs all
    came earlier in the batch is repeated."""
    checked = Checked(rows=len(batch))
    for cells in batch:
        try:
            if cells.values is None:
                raise RowError("invalid_row", "row", cells.problem or "the row cannot be read")
            destination, scopes = suppression_imports.suppression_row(found, header, cells.values, channel)
        except RowError as exc:
            checked.rejected.append(_reject(cells.line, exc, exc.field))
            continue
        pairs = [(scope, destination) for scope in scopes]
        fresh = [pair for pair in pairs if pair not in checked.suppress]
        if not fresh:
            checked.repeated += 1
            continue
        for pair in fresh:
            checked.suppress[pair] = f"line {cells.line}"
        checked.lines.append(fresh)
    return checked


def _write_suppressions(
    upload: dict[str, Any], etag: str, part: Part, checked: Checked
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Write one checked batch of a suppression import: a row is accepted when it suppresses a destination in
    a scope where it was not suppressed yet, else a duplicate."""
    origin = f"{part.run(upload, etag)}:{part.resume}"
    details = {pair: f"import {upload['id']}, {line}" for pair, line in checked.suppress.items()}
    before = suppressions.import_rows(upload["account_id"], details, origin, float(upload["started_at"]))
    accepted = sum(1 for pairs in checked.lines if any(pair not in before for pair in pairs))
    counts = {
        "rows_read": checked.rows,
        "accepted": accepted,
        "invalid": len(checked.rejected),
        "duplicates": checked.repeated + len(checked.lines) - accepted,
    }
    return counts, checked.rejected


def _write_batch(
    upload: dict[str, Any], etag: str, part: Part, checked: Checked
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Write one checked batch; its counts and its rejected rows."""
    valid, rejected, repeated = checked.valid, checked.rejected, checked.repeated
    listed: set[str] = set()
    if valid:
        added = lists.put_recipients_in_batches(
            upload["account_id"],
            upload["list_id"],
            list(valid.values()),
            run=part.run(upload, etag),
            start=part.resume,
            exclusive=part.segment is not None,
        )
        late_recipients.tell_campaigns(upload["account_id"], added)
        listed = added.listed
    counts = {
        "rows_read": checked.rows,
        "accepted": len(valid) - len(listed),
        "invalid": len(rejected),
        "duplicates": repeated + len(listed),
    }
    return counts, rejected


def _column_of(field_name: str | None, mapping: ColumnMapping, header: list[str], values: list[str] | None) -> str:
    """The file's column a row error is about: `destinations[1].address` counts only the row's non-empty
    destination cells, so it is mapped back to the column it came from (the user knows the columns)."""
    if not field_name or values is None or not field_name.startswith("destinations["):
        return field_name or ""
    index = int(field_name[len("destinations[") :].split("]", 1)[0])
    cells = dict(zip(header, values, strict=False))
    filled = [d.column for d in mapping.destinations if cells.get(d.column, "").strip()]
    return filled[index] if index < len(filled) else field_name


def _reject(line: int, error: RowError, column: str) -> dict[str, Any]:
    detail = error.detail
    if column and column != error.field and error.field and detail.startswith(error.field):
        detail = column + detail[len(error.field) :]
    detail = detail if len(detail) <= MAX_DETAIL else detail[:MAX_DETAIL] + "..."
    return {"line": line, "reason": error.reason, "field": column, "detail": detail}


def _finish(upload: dict[str, Any], key: str, etag: str, totals: dict[str, int] | None = None) -> str:
    """Write the rejected rows' CSV (when there are any) and complete the upload (a segmented one with its
    segments' `totals`)."""
    report = None
    if int((totals or upload).get("invalid", 0)):
        report = rejects_key(upload["account_id"], upload["list_id"], upload["id"], etag)
        objects.write_stream(report, _rejects_csv(upload, etag))
    at = None if totals is not None else int(upload["resume"])
    if not uploads.finish_run(upload, etag, at=at, rejects_key=report, totals=totals):
        return "superseded"
    logger.info(
        "upload ingested", extra={"upload": upload["id"], **(totals or {k: upload.get(k) for k in uploads.COUNTERS})}
    )
    return "completed"


def _finish_segmented(upload: dict[str, Any], key: str, etag: str) -> str:
    """Complete a segmented upload once it is planned to the end and every segment is done. Called by the
    planner at its end and by each segment at its end, each after its own write: whichever writes last sees
    everything done (consistent reads) and completes it; two that both do are one conditional update."""
    current = uploads.get_upload(upload["account_id"], upload["list_id"], upload["id"])
    if current is None or current.get("run") != etag or current["state"] != UploadState.INGESTING:
        return "segment done"
    found = uploads.segments(current, etag)
    done = sum(1 for s in found if s.get("done"))
    if not current.get("planned") or done < int(current.get("segment_count", 0)):
        return "segment done"
    return _finish(current, key, etag, uploads.segment_totals(found))


def _rejects_csv(upload: dict[str, Any], etag: str) -> Iterator[bytes]:
    yield tabular.csv_line(REJECTS_HEADER)
    for row in uploads.rejects(upload, etag):
        yield tabular.csv_line([str(row["line"]), row["reason"], row.get("field", ""), row["detail"]])


def handle_message(body: dict[str, Any], context: Any) -> list[str]:
    """One SQS message of the ingest queue: an S3 event notification (several records are queued one
    message each), S3's test event, or a continuation; what became of each object."""
    if body.get("Event") == "s3:TestEvent":
        return ["ignored: test event"]
    if "ingest" in body:
        target = body["ingest"]
        segment = target.get("segment")
        return [
            ingest_object(str(target["key"]), str(target["etag"]), context, None if segment is None else int(segment))
        ]
    objects_created = [
        record["s3"]
        for record in body.get("Records", [])
        if record.get("eventSource") == "aws:s3" and str(record.get("eventName", "")).startswith("ObjectCreated")
    ]
    if len(objects_created) == 1:
        s3 = objects_created[0]
        return [ingest_object(_key_of(s3), str(s3["object"]["eTag"]), context)]
    for s3 in objects_created:  # one object per invocation: each gets the whole time budget
        queue_object(_key_of(s3), str(s3["object"]["eTag"]))
    return ["queued"] * len(objects_created) or [f"ignored: {json.dumps(body)[:200]}"]


def _key_of(s3: dict[str, Any]) -> str:
    """Keys in S3 event notifications are URL-encoded, spaces as '+'."""
    return unquote_plus(str(s3["object"]["key"]))
