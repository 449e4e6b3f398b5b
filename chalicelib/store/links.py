"""The link catalog (decision 43): `LINK#<code>` / `META` in the main table, one item per campaign and URL
base (scheme, host, path) a tracked link was made for: {account, campaign_id, base, buckets}. A token names
it by its code (domain/links.py), so a click finds the campaign, and the recipient's delivery, without an
index. Not under the account's key: only a token signed by us reaches it (as an API key's hash does).

Written by dispatch once per distinct base per process and hour (cached), with a conditional update that
holds when the item is absent or already this campaign's base (so every process writes the same thing);
kept (`purge_at`) a year past the deliveries' retention, renewed by those writes while the campaign sends.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.settings import get_settings
from chalicelib.store import aws

PREFIX = "LINK#"
CACHE_SECONDS = 3600  # a process writes a base again after this (renewing purge_at)
READ_CACHE_SECONDS = 300
KEEP_DAYS_PAST_RETENTION = 365
WRITE_TRIES = 4  # beyond botocore's own retries: a catalog write lost in a send fails that recipient


class CatalogUnavailable(RuntimeError):
    """The catalog could not be written (DynamoDB kept failing): the link cannot be made now."""


_written: dict[tuple[str, str, str], tuple[str, float]] = {}  # (account, campaign, base) -> (code, until)
_read: dict[str, tuple[dict[str, Any] | None, float]] = {}
_lock = threading.Lock()


def _key(code: str) -> dict[str, Any]:
    return aws.to_item({"pk": f"{PREFIX}{code}", "sk": "META"})


def cached_code(account: str, campaign_id: str, base: str) -> str | None:
    found = _written.get((account, campaign_id, base))
    return found[0] if found and found[1] > time.time() else None


def put(code: str, account: str, campaign_id: str, base: str, buckets: int) -> bool:
    """Record `code` as the campaign's code for `base`; False when the code is another base's (a collision:
    the caller tries the next code). One conditional UpdateItem."""
    purge = time.time() + (get_settings().delivery_retention_days + KEEP_DAYS_PAST_RETENTION) * 86_400
    for attempt in range(1, WRITE_TRIES + 1):
        try:
            written = _put(code, account, campaign_id, base, buckets, int(purge))
            break
        except ClientError as exc:
            if attempt == WRITE_TRIES:
                raise CatalogUnavailable(f"the link catalog could not be written: {exc}") from exc
            time.sleep(0.1 * 2**attempt)
    if written is None:
        return False
    with _lock:
        if len(_written) > 10_000:
            _written.clear()
        _written[(account, campaign_id, base)] = (code, time.time() + CACHE_SECONDS)
    return True


def _put(code: str, account: str, campaign_id: str, base: str, buckets: int, purge: int) -> dict[str, Any] | None:
    return aws.write_if(
        aws.dynamodb().update_item,
        TableName=get_settings().main_table,
        Key=_key(code),
        UpdateExpression="SET #a = :a, #c = :c, #b = :b, #n = :n, purge_at = :p",
        ConditionExpression="attribute_not_exists(pk) OR (#a = :a AND #c = :c AND #b = :b)",
        ExpressionAttributeNames={"#a": "account", "#c": "campaign_id", "#b": "base", "#n": "buckets"},
        ExpressionAttributeValues=aws.to_values(
            {":a": account, ":c": campaign_id, ":b": base, ":n": buckets, ":p": purge}
        ),
    )


def get(code: str) -> dict[str, Any] | None:
    """The catalog item of a code (None: none), cached a few minutes per process (it never changes)."""
    found = _read.get(code)
    if found and found[1] > time.time():
        return found[0]
    answer = aws.dynamodb().get_item(TableName=get_settings().main_table, Key=_key(code))
    item = aws.from_item(answer["Item"]) if "Item" in answer else None
    with _lock:
        if len(_read) > 10_000:
            _read.clear()
        _read[code] = (item, time.time() + READ_CACHE_SECONDS)
    return item


def _forget() -> None:
    _written.clear()
    _read.clear()


aws.on_reset(_forget)
