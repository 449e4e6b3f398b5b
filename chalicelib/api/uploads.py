"""List uploads through S3: hand out presigned URLs, complete multipart uploads, report progress. Suppression
imports (decision 44) take the same path: `POST /v1/suppressions/imports` hands out the URL of a file of
destinations, `GET /v1/suppressions/imports/{import_id}` reports its progress and rejected rows.

The request does O(1) work: the file goes straight to S3, and its object-created notification starts
the ingest worker (operations.ingest), which fills the counters read here.
"""

from __future__ import annotations

import time
from typing import Any

from chalice import Blueprint

from chalicelib.api.http import parse_body, route
from chalicelib.api.views import iso
from chalicelib.domain.errors import Conflict, FieldError, InvalidInput, NotFound
from chalicelib.domain.models import (
    MultipartUpload,
    SuppressionImport,
    SuppressionImportCreate,
    Upload,
    UploadComplete,
    UploadCreate,
    UploadCreated,
    UploadError,
)
from chalicelib.domain.suppression_imports import SUPPRESSIONS_TARGET
from chalicelib.domain.uploads import (
    MULTIPART_FROM_BYTES,
    URL_EXPIRES_SECONDS,
    UploadState,
    format_of,
    object_key,
    part_count,
    part_size,
)
from chalicelib.store import keys, lists, objects, uploads

bp = Blueprint(__name__)


@route(bp, "/lists/{list_id}/uploads", methods=["POST"], status=201)
def create_upload(account: str, list_id: str) -> UploadCreated:
    body = parse_body(bp.current_request, UploadCreate)
    lists.get_list(account, list_id)
    kind = body.format or format_of(body.filename)
    if kind is None:
        raise InvalidInput.on("format", "give csv or xlsx, or a file name ending .csv, .tsv, .txt or .xlsx")
    upload_id = keys.new_id("upl")
    key = object_key(account, list_id, upload_id, body.filename)
    fields: dict[str, Any] = {"key": key, "filename": body.filename, "format": kind, "size_bytes": body.size_bytes}
    if body.mapping is not None:
        fields["mapping"] = body.mapping.model_dump(mode="json")
    created = UploadCreated(
        id=upload_id, state=UploadState.AWAITING_FILE, expires_at=iso(time.time() + URL_EXPIRES_SECONDS) or ""
    )
    if body.size_bytes > MULTIPART_FROM_BYTES:
        multipart_id = objects.start_multipart(key)
        fields["multipart_id"] = multipart_id
        created.multipart = MultipartUpload(
            upload_id=multipart_id,
            part_size=part_size(body.size_bytes),
            part_urls=[
                objects.presign_part(key, multipart_id, number, URL_EXPIRES_SECONDS)
                for number in range(1, part_count(body.size_bytes) + 1)
            ],
            complete_url=f"/v1/lists/{list_id}/uploads/{upload_id}/complete",
        )
    else:
        created.upload_url = objects.presign_put(key, URL_EXPIRES_SECONDS)
    uploads.create_upload(account, list_id, upload_id, **fields)
    return created


@route(bp, "/lists/{list_id}/uploads/{upload_id}", methods=["GET"])
def get_upload(account: str, list_id: str, upload_id: str) -> Upload:
    return upload_view(_upload(account, list_id, upload_id))


@route(bp, "/lists/{list_id}/uploads/{upload_id}/complete", methods=["POST"])
def complete_upload(account: str, list_id: str, upload_id: str) -> Upload:
    body = parse_body(bp.current_request, UploadComplete)
    item = _upload(account, list_id, upload_id)
    if not item.get("multipart_id"):
        raise Conflict(detail="this upload is a single PUT, not a multipart upload")
    if item["state"] != UploadState.AWAITING_FILE or item.get("run"):
        return upload_view(item)  # completed before: the same answer again
    try:
        objects.complete_multipart(
            item["key"], item["multipart_id"], [(part.part_number, part.etag) for part in body.parts]
        )
    except objects.MultipartError as exc:
        raise InvalidInput(detail=f"S3 refused the parts: {exc}", errors=[FieldError("parts", str(exc))]) from None
    return upload_view(item)


def _upload(account: str, list_id: str, upload_id: str) -> dict[str, Any]:
    """The upload, while its list exists: a deleted list's uploads go with it (404)."""
    lists.get_list(account, list_id)
    item = uploads.get_upload(account, list_id, upload_id)
    if item is None:
        raise NotFound(detail=f"upload {upload_id} of list {list_id} does not exist")
    return item


def _segments_done(item: dict[str, Any]) -> int | None:
    if not item.get("segmented"):
        return None
    if "segments_done" in item:
        return int(item["segments_done"])
    return int(item.get("segment_count", 0)) if item["state"] == UploadState.COMPLETED else 0


def upload_view(item: dict[str, Any]) -> Upload:
    item = uploads.with_segment_totals(item)
    error = item.get("error")
    report = None
    if item.get("rejects_key") and item["state"] == UploadState.COMPLETED:
        report = objects.presign_get(item["rejects_key"], URL_EXPIRES_SECONDS, f"{item['id']}-rejected-rows.csv")
    return Upload(
        id=item["id"],
        list_id=item["list_id"],
        filename=item.get("filename", ""),
        format=item.get("format"),
        state=UploadState(item["state"]),
        rows_read=int(item.get("rows_read", 0)),
        accepted=int(item.get("accepted", 0)),
        invalid=int(item.get("invalid", 0)),
        duplicates=int(item.get("duplicates", 0)),
        segments=int(item["segment_count"]) if item.get("segmented") else None,
        segments_done=_segments_done(item),
        error=UploadError(**error) if error else None,
        rejected_rows_url=report,
        created_at=iso(item["created_at"]) or "",
        finished_at=iso(item.get("finished_at")),
    )


@route(bp, "/suppressions/imports", methods=["POST"], status=201)
def create_suppression_import(account: str) -> UploadCreated:
    body = parse_body(bp.current_request, SuppressionImportCreate)
    kind = body.format or format_of(body.filename)
    if kind is None:
        raise InvalidInput.on("format", "give csv or xlsx, or a file name ending .csv, .tsv, .txt or .xlsx")
    upload_id = keys.new_id("upl")
    key = object_key(account, SUPPRESSIONS_TARGET, upload_id, body.filename)
    url = objects.presign_put(key, URL_EXPIRES_SECONDS)
    fields: dict[str, Any] = {"key": key, "filename": body.filename, "format": kind, "size_bytes": body.size_bytes}
    fields.update(target=SUPPRESSIONS_TARGET, channel=body.channel)
    uploads.create_upload(account, SUPPRESSIONS_TARGET, upload_id, **fields)
    expires_at = iso(time.time() + URL_EXPIRES_SECONDS) or ""
    return UploadCreated(id=upload_id, state=UploadState.AWAITING_FILE, upload_url=url, expires_at=expires_at)


@route(bp, "/suppressions/imports/{import_id}", methods=["GET"])
def get_suppression_import(account: str, import_id: str) -> SuppressionImport:
    item = uploads.get_upload(account, SUPPRESSIONS_TARGET, import_id)
    if item is None:
        raise NotFound(detail=f"suppression import {import_id} does not exist")
    view = upload_view(item)
    return SuppressionImport(
        **view.model_dump(include=set(SuppressionImport.model_fields) - {"channel"}), channel=item.get("channel")
    )
