"""List uploads through S3: object key shapes, limits, formats and part sizes. Pure.

An uploaded file's key is `uploads/{account}/{list_id}/{upload_id}/{filename}`: the ingest worker
finds the account, the list and the upload from the key alone. An object dropped into the bucket
under `uploads/{account}/{list_id}/` without an upload resource gets an upload id derived from its
key, so every notification of that object names the same upload.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

UPLOADS_PREFIX = "uploads/"
MAX_UPLOAD_BYTES = 10 * 1024**3  # 10 GiB
# Above this size the API hands out a multipart upload (a single presigned PUT takes up to 5 GB).
MULTIPART_FROM_BYTES = 100 * 1000**2
MIN_PART_BYTES = 64 * 1024**2
MAX_PARTS = 10_000
URL_EXPIRES_SECONDS = 3600
MAX_FILENAME = 200

UploadFormat = Literal["csv", "xlsx"]
_EXTENSIONS: dict[str, UploadFormat] = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".xlsx": "xlsx"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class UploadState(StrEnum):
    AWAITING_FILE = "awaiting_file"
    INGESTING = "ingesting"
    COMPLETED = "completed"
    FAILED = "failed"


FINISHED = frozenset({UploadState.COMPLETED, UploadState.FAILED})


def format_of(filename: str) -> UploadFormat | None:
    """The format a file name's extension says, or None."""
    lowered = filename.lower()
    for extension, kind in _EXTENSIONS.items():
        if lowered.endswith(extension):
            return kind
    return None


def safe_filename(filename: str) -> str:
    """The file name as a key segment: ASCII letters, digits, '.', '_', '-' only, never empty or '..'."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    cleaned = _UNSAFE.sub("_", ascii_name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip("._")
    return (cleaned or "upload")[-MAX_FILENAME:]


def object_key(account_id: str, list_id: str, upload_id: str, filename: str) -> str:
    return f"{UPLOADS_PREFIX}{account_id}/{list_id}/{upload_id}/{safe_filename(filename)}"


@dataclass(frozen=True)
class ObjectKey:
    """What an upload object's key names."""

    account_id: str
    list_id: str
    upload_id: str
    filename: str
    dropped: bool  # no upload id segment of ours: the object was put straight into the bucket


def parse_key(key: str) -> ObjectKey | None:
    """The account, list and upload of an object key, or None when the key is not an upload's."""
    if not key.startswith(UPLOADS_PREFIX):
        return None
    parts = key[len(UPLOADS_PREFIX) :].split("/")
    if len(parts) < 3 or not _ID.match(parts[0]) or not _ID.match(parts[1]) or not parts[-1]:
        return None
    account_id, list_id = parts[0], parts[1]
    if len(parts) == 4 and parts[2].startswith("upl_") and _ID.match(parts[2]):
        return ObjectKey(account_id, list_id, parts[2], parts[3], dropped=False)
    return ObjectKey(account_id, list_id, dropped_upload_id(key), parts[-1], dropped=True)


def dropped_upload_id(key: str) -> str:
    """The upload id of an object put into the bucket without an upload: stable for its key."""
    return "upl_d" + hashlib.blake2b(key.encode(), digest_size=10).hexdigest()


def part_size(size_bytes: int) -> int:
    """A multipart upload's part size: at least 64 MiB, and few enough parts (at most 10,000)."""
    needed = math.ceil(size_bytes / MAX_PARTS)
    mib = 1024**2
    return max(MIN_PART_BYTES, math.ceil(needed / mib) * mib)


def part_count(size_bytes: int) -> int:
    return max(1, math.ceil(size_bytes / part_size(size_bytes)))


def rejects_key(account_id: str, list_id: str, upload_id: str, etag: str) -> str:
    """Where the rejected rows' CSV of one ingest of an object is written (outside `uploads/`, so
    writing it notifies nobody)."""
    return f"rejects/{account_id}/{list_id}/{upload_id}/{etag}.csv"
