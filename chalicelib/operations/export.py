"""Write an export's CSV to S3: page by page into parts of a multipart upload, so memory holds one part.

A list export reads the list twice: a projected first pass finds the attribute names (the columns), the
second writes the rows. A campaign export pages through the campaign's deliveries. Every cell goes
through `tabular.csv_line`, which neutralises formulas. Progress is recorded at each part, so when the
time budget runs low the worker hands the rest to a continuation message, which resumes there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from chalicelib.domain import segments
from chalicelib.domain.delivery import last_change
from chalicelib.domain.errors import NotFound
from chalicelib.domain.recipients import MAX_DESTINATIONS
from chalicelib.domain.tabular import csv_line
from chalicelib.observability import logger
from chalicelib.settings import get_settings
from chalicelib.store import campaigns, deliveries, exports, keys, list_items, lists

PAGE = 500
# Attribute columns of a list export; names past these go to one JSON column.
MAX_ATTRIBUTE_COLUMNS = 200
MORE_ATTRIBUTES = "more_attributes"
# Seconds kept back before the invocation's deadline: enough to record progress and queue the rest.
MARGIN_SECONDS = 30.0
CAMPAIGN_COLUMNS = [
    "recipient_id",
    "destination",
    "destination_index",
    "state",
    "attempts",
    "provider_message_id",
    "last_error",
    "updated_at",
]
# An `every` campaign's export adds the segment each message was for (decision 49).
SEGMENT_COLUMN = "segment"
LIST_COLUMNS = [
    "id",
    *(f"destination_{n}_{part}" for n in range(1, MAX_DESTINATIONS + 1) for part in ("type", "address")),
    "locale",
    "timezone",
]

Fetch = Callable[[str | None, int], tuple[list[dict[str, Any]], str | None]]


class SourceGone(Exception):
    """The list or campaign being exported no longer exists."""


def run_export(account_id: str, export_id: str, time_left: Callable[[], float]) -> str:
    """Take the export and write as much of it as the time allows; what happened: completed, continued,
    failed, or skipped (finished already, or another worker holds it)."""
    pk = keys.export_pk(account_id, export_id)
    job = exports.take_lease(pk, time.time(), time_left() + 1)
    if job is None:
        return "skipped"
    lease = float(job["lease"])
    try:
        fetch, generation = _source(account_id, job)
        if not job.get("upload_id"):
            job["columns"] = _columns(account_id, job, generation)
            job["upload_id"] = exports.start_upload(job["object_key"])
            if not exports.save_start(pk, lease, job["upload_id"], job["columns"]):
                return "skipped"
        return _write(pk, job, lease, fetch, _row_builder(job), time_left)
    except SourceGone as exc:
        give_up(account_id, export_id, str(exc))
        return "failed"


def give_up(account_id: str, export_id: str, reason: str) -> None:
    """Mark the export failed and drop its unfinished upload."""
    pk = keys.export_pk(account_id, export_id)
    try:
        job = exports.get_export(account_id, export_id)
    except NotFound:
        return
    if job.get("upload_id"):
        try:
            exports.abort_upload(job["object_key"], job["upload_id"])
        except Exception:  # the bucket's lifecycle rule aborts it in two days anyway
            logger.exception("aborting an export's upload failed", extra={"export": export_id})
    exports.fail(pk, reason)


def _write(
    pk: str,
    job: dict[str, Any],
    lease: float,
    fetch: Fetch,
    row: Callable[[dict[str, Any]], list[str]],
    time_left: Callable[[], float],
) -> str:
    key, upload_id = job["object_key"], job["upload_id"]
    parts = [(int(p["n"]), str(p["etag"])) for p in job.get("parts", [])]
    rows, cursor = int(job.get("rows", 0)), job.get("cursor") or None
    buffer = bytearray() if parts else bytearray(csv_line(job["columns"]))
    buffered = 0
    part_bytes = get_settings().export_part_bytes
    while True:
        if time_left() < MARGIN_SECONDS:  # what is buffered is read again by the continuation
            exports.give_back(pk, lease)
            exports.queue_export(job["account_id"], job["id"])
            return "continued"
        items, cursor = fetch(cursor, PAGE)
        for item in items:
            buffer += csv_line(row(item))
        buffered += len(items)
        if cursor is None:
            break
        if len(buffer) >= part_bytes:
            part = exports.upload_part(key, upload_id, len(parts) + 1, bytes(buffer))
            parts.append(part)
            rows, buffered = rows + buffered, 0
            buffer.clear()
            if not exports.save_part(pk, lease, part, cursor, rows):
                return "skipped"  # the lease was lost: another worker carries on from the last part it saw
    if buffer or not parts:
        parts.append(exports.upload_part(key, upload_id, len(parts) + 1, bytes(buffer)))
    exports.finish_upload(key, upload_id, parts)
    exports.complete(pk, lease, rows + buffered)
    return "completed"


# --- what is exported -------------------------------------------------------------------------------


def _source(account_id: str, job: dict[str, Any]) -> tuple[Fetch, int]:
    """How to page through the export's source (and the list's generation); SourceGone when it is gone."""
    if job["kind"] == "campaign":
        campaign = campaigns.get_campaign_by_pk(keys.campaign_pk(account_id, job["source_id"]))
        if campaign is None:
            raise SourceGone(f"campaign {job['source_id']} no longer exists")
        buckets = int(campaign.get("buckets", 1))

        def campaign_page(after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
            items, position = deliveries.deliveries_page(campaign["pk"], buckets, after=after, limit=limit)
            if segments.is_every(campaign):  # a row per message: its recipient's id and its segment (decision 49)
                items = [_message_row_item(campaign, item) for item in items]
            return items, position

        return campaign_page, 0
    try:
        generation = lists.generation_of(lists.get_list(account_id, job["source_id"]))
    except NotFound:
        raise SourceGone(f"list {job['source_id']} no longer exists") from None

    def list_page(after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        page, position = lists.recipients_page(
            account_id, job["source_id"], after=after, limit=limit, generation=generation
        )
        return [item for _, item in page], position

    return list_page, generation


def _message_row_item(campaign: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """An `every` campaign's message as exported: keyed by its recipient's id, with its segment's name."""
    rid, slot = segments.split_key(str(item["sk"]))
    found = segments.slot_segment(campaign, slot)
    return {**item, "sk": rid, SEGMENT_COLUMN: str(found["name"]) if found else ""}


def _row_builder(job: dict[str, Any]) -> Callable[[dict[str, Any]], list[str]]:
    """How one item becomes a row under the export's columns."""
    if job["kind"] == "campaign":
        if SEGMENT_COLUMN in job["columns"]:
            return lambda item: [*_delivery_row(item), str(item.get(SEGMENT_COLUMN, ""))]
        return _delivery_row
    attribute_columns = [c.removeprefix("attributes.") for c in job["columns"] if c.startswith("attributes.")]
    more = MORE_ATTRIBUTES in job["columns"]
    return lambda item: _list_row(item, attribute_columns, more)


def _columns(account_id: str, job: dict[str, Any], generation: int) -> list[str]:
    """The header: fixed for a campaign; for a list, a first pass finds the attribute names."""
    if job["kind"] == "campaign":
        campaign = campaigns.get_campaign_by_pk(keys.campaign_pk(account_id, job["source_id"])) or {}
        return [*CAMPAIGN_COLUMNS, SEGMENT_COLUMN] if segments.is_every(campaign) else list(CAMPAIGN_COLUMNS)
    names, more = list_items.attribute_names(account_id, job["source_id"], generation, MAX_ATTRIBUTE_COLUMNS)
    return LIST_COLUMNS + [f"attributes.{name}" for name in names] + ([MORE_ATTRIBUTES] if more else [])


def _list_row(item: dict[str, Any], attribute_columns: list[str], more: bool) -> list[str]:
    """id, five (type, address) pairs, locale, timezone, then the attribute columns' values."""
    recipient = lists.recipient_of(item)
    cells = [recipient.id]
    for index in range(MAX_DESTINATIONS):
        if index < len(recipient.destinations):
            destination = recipient.destinations[index]
            cells += [destination.type.value, destination.address]
        else:
            cells += ["", ""]
    cells += [recipient.locale or "", recipient.timezone or ""]
    cells += [_text(recipient.attributes.get(name)) for name in attribute_columns]
    if more:
        rest = {k: v for k, v in recipient.attributes.items() if k not in attribute_columns}
        cells.append(json.dumps(rest, ensure_ascii=False, separators=(",", ":")) if rest else "")
    return cells


def _delivery_row(item: dict[str, Any]) -> list[str]:
    return [
        str(item["sk"]),
        _text(item.get("destination")),
        _text(item.get("destination_index")),
        str(item["state"]),
        _text(item.get("attempt")),
        _text(item.get("provider_message_id")),
        _text(item.get("last_error")),
        _iso(last_change(item)),
    ]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _iso(epoch: Any) -> str:
    if not epoch:
        return ""
    return datetime.fromtimestamp(float(epoch), tz=UTC).isoformat().replace("+00:00", "Z")
