"""S3 access for uploads: presigned URLs, multipart completion, ranged reads, streamed writes.

Reads never hold an object in memory: `stream` iterates ranged GETs of 16 MiB, `RangedFile` is a seekable
read-only file over ranged GETs (what openpyxl's zip reader needs), and `write_stream` uploads in
parts of `PART_BYTES`. Every read is pinned to the ETag it was told about (`IfMatch`), so an object
replaced during an ingest fails loudly (`ObjectChanged`) instead of mixing two files.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.settings import get_settings
from chalicelib.store import aws

# Parts of a streamed write (S3's minimum for all but the last part is 5 MiB).
PART_BYTES = 8 * 1024 * 1024
# RangedFile reads blocks of this size and keeps a few of them.
BLOCK_BYTES = 1024 * 1024
CACHED_BLOCKS = 8
STREAM_PIECE = 256 * 1024
STREAM_WINDOW = 16 * 1024 * 1024


class ObjectMissing(LookupError):
    """The object does not exist (any more)."""


class ObjectChanged(RuntimeError):
    """The object's ETag is not the one being read: it was replaced."""


class MultipartError(ValueError):
    """S3 refused to complete a multipart upload (missing or wrong parts)."""


@lru_cache(maxsize=1)
def s3() -> Any:
    return aws._client("s3")


aws.on_reset(s3.cache_clear)


def bucket() -> str:
    return get_settings().uploads_bucket


@dataclass(frozen=True)
class Head:
    size: int
    etag: str  # without quotes, as S3 notifications write it


def head(key: str) -> Head:
    try:
        answer = s3().head_object(Bucket=bucket(), Key=key)
    except ClientError as exc:
        if _code(exc) in ("404", "NoSuchKey", "NotFound"):
            raise ObjectMissing(key) from None
        raise
    return Head(size=int(answer["ContentLength"]), etag=str(answer["ETag"]).strip('"'))


def presign_put(key: str, expires: int) -> str:
    url: str = s3().generate_presigned_url(
        "put_object", Params={"Bucket": bucket(), "Key": key}, ExpiresIn=expires, HttpMethod="PUT"
    )
    return url


def presign_get(key: str, expires: int, filename: str) -> str:
    params = {"Bucket": bucket(), "Key": key, "ResponseContentDisposition": f'attachment; filename="{filename}"'}
    url: str = s3().generate_presigned_url("get_object", Params=params, ExpiresIn=expires)
    return url


def start_multipart(key: str) -> str:
    upload_id: str = s3().create_multipart_upload(Bucket=bucket(), Key=key)["UploadId"]
    return upload_id


def presign_part(key: str, upload_id: str, part_number: int, expires: int) -> str:
    params = {"Bucket": bucket(), "Key": key, "UploadId": upload_id, "PartNumber": part_number}
    url: str = s3().generate_presigned_url("upload_part", Params=params, ExpiresIn=expires, HttpMethod="PUT")
    return url


def complete_multipart(key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
    """Complete with (part_number, etag) pairs; MultipartError when S3 refuses them."""
    listed = [{"PartNumber": n, "ETag": etag if etag.startswith('"') else f'"{etag}"'} for n, etag in sorted(parts)]
    try:
        s3().complete_multipart_upload(Bucket=bucket(), Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed})
    except ClientError as exc:
        if _code(exc) in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall", "NoSuchUpload", "MalformedXML"):
            raise MultipartError(f"{_code(exc)}: {exc.response.get('Error', {}).get('Message', '')}") from None
        raise


def read_range(key: str, etag: str, start: int, end: int) -> bytes:
    """Bytes [start, end) of the object at `etag` (fewer at its end)."""
    if end <= start:
        return b""
    body = _get(key, etag, f"bytes={start}-{end - 1}")
    if body is None:
        return b""
    data: bytes = body.read()
    return data


def stream(key: str, etag: str, offset: int = 0, stop: int | None = None) -> Generator[bytes, None, None]:
    """The object's bytes from `offset` to its end (or to `stop`, exclusive), in pieces, over ranged GETs of
    STREAM_WINDOW bytes (so no connection stays open for a whole invocation)."""
    while stop is None or offset < stop:
        last = offset + STREAM_WINDOW - 1 if stop is None else min(offset + STREAM_WINDOW, stop) - 1
        asked = last + 1 - offset
        body = _get(key, etag, f"bytes={offset}-{last}")
        if body is None:
            return
        got = 0
        try:
            for piece in body.iter_chunks(STREAM_PIECE):
                got += len(piece)
                yield piece
        finally:
            body.close()
        offset += got
        if got < asked:
            return


def _get(key: str, etag: str, byte_range: str) -> Any:
    try:
        return s3().get_object(Bucket=bucket(), Key=key, IfMatch=f'"{etag}"', Range=byte_range)["Body"]
    except ClientError as exc:
        code = _code(exc)
        if code == "InvalidRange":
            return None  # the range starts at or past the end: nothing left to read
        if code in ("PreconditionFailed", "412"):
            raise ObjectChanged(key) from None
        if code in ("NoSuchKey", "404"):
            raise ObjectMissing(key) from None
        raise


class RangedFile(io.RawIOBase):
    """A read-only, seekable file over an S3 object (pinned to its ETag), read in cached blocks."""

    def __init__(self, key: str, etag: str, size: int) -> None:
        super().__init__()
        self.key, self.etag, self.size = key, etag, size
        self._pos = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), max(0, self.size - self._pos))
        done = 0
        while done < wanted:
            index, within = divmod(self._pos, BLOCK_BYTES)
            block = self._block(index)
            piece = block[within : within + wanted - done]
            if not piece:
                break
            view[done : done + len(piece)] = piece
            done += len(piece)
            self._pos += len(piece)
        return done

    def _block(self, index: int) -> bytes:
        if index in self._blocks:
            self._blocks.move_to_end(index)
            return self._blocks[index]
        start = index * BLOCK_BYTES
        block = read_range(self.key, self.etag, start, min(self.size, start + BLOCK_BYTES))
        self._blocks[index] = block
        while len(self._blocks) > CACHED_BLOCKS:
            self._blocks.popitem(last=False)
        return block


def open_object(key: str, etag: str, size: int) -> io.BufferedReader:
    """A buffered, seekable file over the object (what zip readers such as openpyxl's expect)."""
    return io.BufferedReader(RangedFile(key, etag, size), buffer_size=64 * 1024)


def write_stream(key: str, chunks: Iterable[bytes], content_type: str = "text/csv") -> int:
    """Write an object from chunks in PART_BYTES parts (one PutObject when it is small); its size."""
    buffer = bytearray()
    parts: list[tuple[int, str]] = []
    upload_id = ""
    size = 0
    try:
        for chunk in chunks:
            buffer += chunk
            size += len(chunk)
            if len(buffer) >= PART_BYTES:
                if not upload_id:
                    upload_id = s3().create_multipart_upload(Bucket=bucket(), Key=key, ContentType=content_type)[
                        "UploadId"
                    ]
                parts.append(_upload_part(key, upload_id, len(parts) + 1, bytes(buffer)))
                buffer.clear()
        if not upload_id:
            s3().put_object(Bucket=bucket(), Key=key, Body=bytes(buffer), ContentType=content_type)
            return size
        if buffer:
            parts.append(_upload_part(key, upload_id, len(parts) + 1, bytes(buffer)))
        complete_multipart(key, upload_id, parts)
    except BaseException:
        if upload_id:
            s3().abort_multipart_upload(Bucket=bucket(), Key=key, UploadId=upload_id)
        raise
    return size


def _upload_part(key: str, upload_id: str, number: int, data: bytes) -> tuple[int, str]:
    answer = s3().upload_part(Bucket=bucket(), Key=key, UploadId=upload_id, PartNumber=number, Body=data)
    return number, str(answer["ETag"])


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
