"""Frequency caps: at most N messages to one destination per period, across every campaign of an account,
per category (or account-wide, with ALL_CATEGORIES).

One item per (account, category, destination) in the main table (keys.cap_pk, sort key CAP) holds the
times of the sends counted (`sent`, epoch seconds, oldest first), a `version`, and `purge_at`: the newest
send plus the period, after which the item counts nothing and may be deleted by TTL.

The window slides and is exact, so a taker must count the times newer than now - period and drop the
older ones in the same write. A DynamoDB condition cannot do that: it can compare `size(sent)`, but that
counts the expired times too, and it cannot say which list positions to remove. So `take` is a
compare-and-set: it reads the item (strongly consistent), decides, and writes the new list only if
`version` is still the one it read. A taker that lost to a concurrent one is refused, gets the item as
that one left it (ReturnValuesOnConditionCheckFailure, sparing a read) and decides again. No two writers
can both build on the same version, so the cap holds however many campaigns send at once.

Each lost try means another taker's write succeeded, and successful takes stop at `max_messages` per
window, so CAS_TRIES is only reached under heavy `give_back` churn; then CapContention is raised.
"""

from __future__ import annotations

import bisect
import math
import secrets
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.settings import get_settings
from chalicelib.store import aws, keys
from chalicelib.store.deliveries import Written

# The category of a cap that counts every message of the account, whatever its category.
ALL_CATEGORIES = "*"
CAS_TRIES = 10
# The TTL attribute. Not `expires_at`: campaigns in the main table use that name for their own expiry,
# which TTL on that name would delete. The main table needs TTL enabled on `purge_at` for caps to be purged.
PURGE_AT = "purge_at"

# (times sent, purge_at) -> the new (times sent, purge_at), or None to write nothing.
Change = Callable[[list[float], float], tuple[list[float], float] | None]


class CapContention(RuntimeError):
    """Every compare-and-set try on a cap lost to a concurrent writer."""


def take(
    account_id: str,
    category: str,
    destination: str,
    *,
    max_messages: int,
    period_seconds: float,
    now: float | None = None,
) -> bool:
    """Count one send to `destination` at `now` if fewer than `max_messages` were counted in the
    `period_seconds` before it (a send exactly one period old no longer counts); False, writing nothing,
    when the cap is reached. Pass `now` to be able to give the send back (`give_back(..., at=now)`).

    Costs one consistent read, plus one write when the send is counted, plus one write per lost race.
    """
    if period_seconds <= 0:
        raise ValueError("period_seconds must be positive")
    if max_messages < 1:
        return False
    at = time.time() if now is None else now

    def add(sent: list[float], purge_at: float) -> tuple[list[float], float] | None:
        kept = [t for t in sent if t > at - period_seconds]
        if len(kept) >= max_messages:
            return None
        bisect.insort(kept, at)  # in order even when clocks disagree
        return kept, max(purge_at, kept[-1] + period_seconds)

    return _compare_and_set(_key(account_id, category, destination), add)


def give_back(account_id: str, category: str, destination: str, at: float) -> None:
    """Uncount a send counted by `take(..., now=at)` that did not happen (e.g. its claim lost a race).

    Removes one time equal to `at`; nothing happens when the cap or the time is not there (already
    given back, or out of the window and dropped).
    """

    def remove(sent: list[float], purge_at: float) -> tuple[list[float], float] | None:
        if at not in sent:
            return None
        sent.remove(at)
        return sent, purge_at

    _compare_and_set(_key(account_id, category, destination), remove)


def get_cap(account_id: str, category: str, destination: str) -> dict[str, Any] | None:
    """The cap's item as stored, or None."""
    return _read(_key(account_id, category, destination))


def _table() -> str:
    return get_settings().main_table


def _key(account_id: str, category: str, destination: str) -> dict[str, Any]:
    if "#" in category:
        raise ValueError("a cap category cannot contain '#'")
    return {"pk": keys.cap_pk(account_id, category, destination), "sk": keys.CAP}


def _read(key: dict[str, Any]) -> dict[str, Any] | None:
    found = aws.dynamodb().get_item(TableName=_table(), Key=aws.to_item(key), ConsistentRead=True)
    return aws.from_item(found["Item"]) if "Item" in found else None


def _compare_and_set(key: dict[str, Any], change: Change) -> bool:
    """Apply `change` to the cap's current times and write the result if the cap did not change
    meanwhile, deciding again on what a concurrent writer left until a write holds. Whether one was made."""
    current = _read(key)
    for _ in range(CAS_TRIES):
        sent = list(current.get("sent", [])) if current else []
        changed = change(sent, float(current.get(PURGE_AT, 0)) if current else 0.0)
        if changed is None:
            return False
        new_sent, purge_at = changed
        if current is None:
            # A cap deleted by TTL and created again must not repeat a version a slow taker read from
            # the old item: a new item starts at a random version, not 1.
            version, condition, values = secrets.randbits(52), "attribute_not_exists(pk)", None
        else:
            version, condition, values = current["version"] + 1, "version = :read", {":read": current["version"]}
        item = {**key, "sent": new_sent, "version": version, PURGE_AT: math.ceil(purge_at)}
        written = _put(item, condition, values)
        if written.ok:
            return True
        current = written.current
    raise CapContention(f"cap {key['pk']} changed under each of {CAS_TRIES} tries")


def _put(item: dict[str, Any], condition: str, values: dict[str, Any] | None) -> Written:
    params: dict[str, Any] = {
        "TableName": _table(),
        "Item": aws.to_item(item),
        "ConditionExpression": condition,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if values:
        params["ExpressionAttributeValues"] = aws.to_values(values)
    try:
        aws.dynamodb().put_item(**params)
        return Written(True)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        old = exc.response.get("Item")
        return Written(False, aws.from_item(old) if old else None)
