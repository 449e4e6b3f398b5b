"""WhatsApp session windows (decision 46): `<account>#WASESSION#<number>` / `<person>`, the time of the
person's last WhatsApp message to the account's number (`at`), kept a little over 24 hours (`purge_at`). One
conditional write per inbound WhatsApp message; dispatch reads a chunk's items in the same BatchGetItem as its
suppressions (same table), so a chunk still makes one read request per 100 keys."""

from __future__ import annotations

from collections.abc import Iterable

from chalicelib.domain.sessions import KEEP_SECONDS
from chalicelib.settings import get_settings
from chalicelib.store import aws, keys, suppressions


def _table() -> str:
    return get_settings().main_table


def opened(account_id: str, number: str, person: str, at: float) -> bool:
    """Note `person`'s message to `number` at `at` (epoch seconds); False when a later one is noted already
    (a repeated or late webhook never moves the window back)."""
    item = {
        "pk": keys.session_pk(account_id, number),
        "sk": person,
        "at": at,
        "purge_at": int(at + KEEP_SECONDS),
    }
    written = aws.write_if(
        aws.dynamodb().put_item,
        TableName=_table(),
        Item=aws.to_item(item),
        ConditionExpression="attribute_not_exists(pk) OR #at < :at",
        ExpressionAttributeNames={"#at": "at"},
        ExpressionAttributeValues=aws.to_item({":at": at}),
    )
    return written is not None


def read(
    account_id: str, scoped: Iterable[tuple[str, str]], sessions: Iterable[tuple[str, str]]
) -> tuple[set[tuple[str, str]], dict[tuple[str, str], float]]:
    """In one strongly consistent BatchGetItem (per 100 keys): which (scope, destination) pairs are suppressed
    (decision 40), and when each (number, person) pair's person last messaged the number on WhatsApp (pairs
    without an item left out)."""
    by_key = {
        (keys.suppression_pk(account_id, scope), suppressions.address_key(account_id, address)): (scope, address)
        for scope, address in set(scoped)
    }
    suppression_keys = set(by_key)
    session_keys = {(keys.session_pk(account_id, number), person) for number, person in set(sessions)}
    asked = [{"pk": pk, "sk": sk} for pk, sk in suppression_keys | session_keys]
    if not asked:
        return set(), {}
    found = aws.batch_get(_table(), asked, projection="pk, sk, #s, #at", names={"#s": "scope", "#at": "at"})
    suppressed: set[tuple[str, str]] = set()
    last: dict[tuple[str, str], float] = {}
    session_prefix = f"{account_id}#WASESSION#"
    for item in found:
        pk, sk = str(item["pk"]), str(item["sk"])
        if pk.startswith(session_prefix) and (pk, sk) in session_keys:
            last[(pk.removeprefix(session_prefix), sk)] = float(item["at"])
        elif (pk, sk) in by_key:
            suppressed.add(by_key[(pk, sk)])
    return suppressed, last
