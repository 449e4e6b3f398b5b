"""Suppressions (decision 40): `<account>#SUP#<scope>` / `<destination>`, one partition per scope, so a
chunk's check is one BatchGetItem of its recipients' keys (`sessions.read`, which reads their WhatsApp
windows in the same request) and a channel's listing is a Query. An item records who asked (an inbound
STOP, the API, an erasure) and when."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from chalicelib.settings import get_settings
from chalicelib.store import aws, keys


def _table() -> str:
    return get_settings().main_table


def add(account_id: str, scopes: Iterable[str], destination: str, source: str, detail: str | None = None) -> int:
    """Suppress `destination` in each scope; how many scopes it was not suppressed in before (an existing
    suppression keeps its first source and time)."""
    added = 0
    for scope in scopes:
        item = {
            "pk": keys.suppression_pk(account_id, scope),
            "sk": destination,
            "scope": scope,
            "source": source,
            "created_at": time.time(),
            **({"detail": detail} if detail else {}),
        }
        written = aws.write_if(
            aws.dynamodb().put_item,
            TableName=_table(),
            Item=aws.to_item(item),
            ConditionExpression="attribute_not_exists(pk)",
        )
        added += written is not None
    return added


def remove(account_id: str, scopes: Iterable[str], destination: str) -> int:
    """Lift the suppressions of `destination` in these scopes; how many there were."""
    removed = 0
    for scope in scopes:
        gone = aws.write_if(
            aws.dynamodb().delete_item,
            TableName=_table(),
            Key=aws.to_item({"pk": keys.suppression_pk(account_id, scope), "sk": destination}),
            ConditionExpression="attribute_exists(pk)",
        )
        removed += gone is not None
    return removed


def suppressions_page(
    account_id: str, scopes: tuple[str, ...], *, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """The suppressions of these scopes, scope after scope, each in destination order."""
    query = {"TableName": _table(), "KeyConditionExpression": "pk = :pk", "ConsistentRead": True}
    partitions = [keys.suppression_pk(account_id, scope) for scope in scopes]
    found, position = aws.page_over_buckets(partitions, query, after=after, limit=limit)
    return [item for _, item in found], position


def items(account_id: str, scopes: list[str], destination: str) -> list[dict[str, Any]]:
    """The suppression items of one destination in these scopes (as they are listed)."""
    asked = [{"pk": keys.suppression_pk(account_id, scope), "sk": destination} for scope in scopes]
    return sorted(aws.batch_get(_table(), asked), key=lambda item: str(item["scope"])) if asked else []


def import_rows(account_id: str, rows: dict[tuple[str, str], str], origin: str, now: float) -> set[tuple[str, str]]:
    """Suppress each (scope, destination) of an import's batch (`rows`: its detail, e.g. the file's line), in
    one consistent BatchGetItem per 100 and one BatchWriteItem per 25; which were already suppressed before
    (by anything but this batch: those keep their first source and time, as `add` keeps them).

    `origin` names the batch (import, object version, start): a batch written again after a crash finds its
    own items and writes them again (the same items), so it counts them as new again, never as suppressed
    before. A suppression added through the API between the read and the write is overwritten by the
    import's (it stays suppressed; its source becomes `import`)."""
    if not rows:
        return set()
    wanted = [{"pk": keys.suppression_pk(account_id, scope), "sk": address} for scope, address in rows]
    found = aws.batch_get(_table(), wanted, projection="#s, sk, origin", names={"#s": "scope"})
    before = {(str(item["scope"]), str(item["sk"])) for item in found if item.get("origin") != origin}
    items = [
        {
            "pk": keys.suppression_pk(account_id, scope),
            "sk": address,
            "scope": scope,
            "source": "import",
            "created_at": now,
            "detail": detail,
            "origin": origin,
        }
        for (scope, address), detail in rows.items()
        if (scope, address) not in before
    ]
    aws.batch_put(_table(), items)
    return before
