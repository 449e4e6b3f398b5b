"""The event log (decision 41): JSON Lines objects in the uploads bucket, one per stream batch (or inbound
message) and account, campaign and hour: `events/<account>/<YYYY-MM-DD>/<HH>/<campaign or "account">/
<first sequence>.jsonl`. Time comes first, so a time range is a key range (one ListObjectsV2 page lists a
thousand objects), and the same objects are the export a user points their own analytics at. A lifecycle
rule on `events/` is the retention."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from chalicelib.store import objects

ACCOUNT_WIDE = "account"  # the campaign segment of an event that is no campaign's (a reply, an opt-out)


def account_prefix(account_id: str) -> str:
    return f"events/{account_id}/"


def hour_prefix(account_id: str, at: float) -> str:
    moment = datetime.fromtimestamp(at, UTC)
    return f"{account_prefix(account_id)}{moment:%Y-%m-%d}/{moment:%H}/"


def write(account_id: str, campaign: str | None, first_at: float, name: str, events: list[dict[str, Any]]) -> str:
    """Put one object of events (a replayed batch puts the same key with the same lines)."""
    key = f"{hour_prefix(account_id, first_at)}{campaign or ACCOUNT_WIDE}/{name}.jsonl"
    body = "".join(json.dumps(event, separators=(",", ":")) + "\n" for event in events).encode()
    objects.s3().put_object(Bucket=objects.bucket(), Key=key, Body=body, ContentType="application/x-ndjson")
    return key


def keys_from(account_id: str, start_after: str, stop_before: str) -> Iterator[str]:
    """The account's event objects after key `start_after` and before `stop_before`, in key (time) order."""
    params: dict[str, Any] = {
        "Bucket": objects.bucket(),
        "Prefix": account_prefix(account_id),
        "StartAfter": start_after,
    }
    while True:
        page = objects.s3().list_objects_v2(**params)
        for item in page.get("Contents", []):
            if item["Key"] >= stop_before:
                return
            yield str(item["Key"])
        if not page.get("IsTruncated"):
            return
        params["ContinuationToken"] = page["NextContinuationToken"]


def read(key: str) -> list[dict[str, Any]]:
    body = objects.s3().get_object(Bucket=objects.bucket(), Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines() if line]
