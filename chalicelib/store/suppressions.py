"""Suppressions (decisions 40, 42): `<account>#SUP#<scope>` / `<address key>`, one partition per scope, so a
chunk's check is one BatchGetItem of its recipients' keys (`sessions.read`, which reads their WhatsApp
windows in the same request) and a channel's listing is a Query. An item
records who asked (an inbound STOP, the API, an erasure) and when.

The sort key is a keyed hash of the destination (`address_key`: HMAC-SHA-256 with the server's
`ADDRESS_KEY_SECRET`, over the account and the address), never the address itself: a suppression an
erasure leaves still matches the number it was made for, yet holds nothing that gives the number back. The
clear `destination` is an attribute, kept on the suppressions nobody erased (a STOP, the API) so they can be
listed; an erasure removes it (and the reason, which may quote the person)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable
from typing import Any

from chalicelib.settings import get_settings
from chalicelib.store import aws, keys

ERASED_FIELDS = ("destination", "detail")


def _table() -> str:
    return get_settings().main_table


def address_key(account_id: str, address: str) -> str:
    """The keyed hash a destination is known by where it must not be kept in clear (suppressions, the
    erasure audit log): the same for the same account and address, useless without the server's secret."""
    secret = get_settings().address_key_secret.encode()
    return hmac.new(secret, f"{account_id}|{address}".encode(), hashlib.sha256).hexdigest()[:40]


def _key(account_id: str, scope: str, destination: str) -> dict[str, Any]:
    return aws.to_item({"pk": keys.suppression_pk(account_id, scope), "sk": address_key(account_id, destination)})


def add(account_id: str, scopes: Iterable[str], destination: str, source: str, detail: str | None = None) -> int:
    """Suppress `destination` in each scope; how many scopes it was not suppressed in before (an existing
    suppression keeps its first source and time). An erasure's suppression holds no clear destination."""
    added = 0
    for scope in scopes:
        item = {
            **aws.from_item(_key(account_id, scope, destination)),
            "scope": scope,
            "source": source,
            "created_at": time.time(),
            **({"destination": destination} if source != "erasure" else {}),
            **({"detail": detail} if detail and source != "erasure" else {}),
        }
        written = aws.write_if(
            aws.dynamodb().put_item,
            TableName=_table(),
            Item=aws.to_item(item),
            ConditionExpression="attribute_not_exists(pk)",
        )
        added += written is not None
    return added


def anonymise(account_id: str, scopes: Iterable[str], destination: str) -> int:
    """Drop the clear destination (and reason) from the suppressions of `destination` that have one, keeping
    the suppressions themselves; how many changed (a second run changes none)."""
    changed = 0
    for scope in scopes:
        written = aws.write_if(
            aws.dynamodb().update_item,
            TableName=_table(),
            Key=_key(account_id, scope, destination),
            UpdateExpression="REMOVE destination, detail SET erased = :yes",
            ConditionExpression="attribute_exists(pk) AND (attribute_exists(destination) OR attribute_exists(detail))",
            ExpressionAttributeValues=aws.to_values({":yes": True}),
        )
        changed += written is not None
    return changed


def remove(account_id: str, scopes: Iterable[str], destination: str) -> int:
    """Lift the suppressions of `destination` in these scopes; how many there were."""
    removed = 0
    for scope in scopes:
        gone = aws.write_if(
            aws.dynamodb().delete_item,
            TableName=_table(),
            Key=_key(account_id, scope, destination),
            ConditionExpression="attribute_exists(pk)",
        )
        removed += gone is not None
    return removed


def suppressions_page(
    account_id: str, scopes: tuple[str, ...], *, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """The suppressions of these scopes, scope after scope, each in key (hash) order."""
    query = {"TableName": _table(), "KeyConditionExpression": "pk = :pk", "ConsistentRead": True}
    partitions = [keys.suppression_pk(account_id, scope) for scope in scopes]
    found, position = aws.page_over_buckets(partitions, query, after=after, limit=limit)
    return [item for _, item in found], position


def items(account_id: str, scopes: list[str], destination: str) -> list[dict[str, Any]]:
    """The suppression items of one destination in these scopes (as they are listed)."""
    asked = [aws.from_item(_key(account_id, scope, destination)) for scope in scopes]
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
    by_key = {(scope, address_key(account_id, address)): (scope, address) for scope, address in rows}
    wanted = [{"pk": keys.suppression_pk(account_id, scope), "sk": key} for scope, key in by_key]
    found = aws.batch_get(_table(), wanted, projection="#s, sk, origin", names={"#s": "scope"})
    before = {by_key[(str(item["scope"]), str(item["sk"]))] for item in found if item.get("origin") != origin}
    items = [
        {
            "pk": keys.suppression_pk(account_id, scope),
            "sk": key,
            "destination": by_key[(scope, key)][1],
            "scope": scope,
            "source": "import",
            "created_at": now,
            "detail": rows[by_key[(scope, key)]],
            "origin": origin,
        }
        for scope, key in by_key
        if by_key[(scope, key)] not in before
    ]
    aws.batch_put(_table(), items)
    return before
