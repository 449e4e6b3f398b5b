"""Frequency caps (chalicelib/store/caps.py): at most N sends per destination per period, a sliding window
kept exact by compare-and-set writes, on moto."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from moto.dynamodb.models.table import Table

from chalicelib.settings import get_settings
from chalicelib.store import aws, caps, keys
from chalicelib.store.deliveries import Written

pytestmark = pytest.mark.integration

T0 = 1_700_000_000.0
DAY = 86_400.0
ACCOUNT = "acc_caps"
PHONE = "+447700900001"


@pytest.fixture
def store(aws_env: dict[str, str]) -> Iterator[None]:
    yield


def take(now: float, *, max_messages: int = 3, period: float = DAY, **where: str) -> bool:
    return caps.take(
        where.get("account", ACCOUNT),
        where.get("category", "marketing"),
        where.get("destination", PHONE),
        max_messages=max_messages,
        period_seconds=period,
        now=now,
    )


def stored(category: str = "marketing", destination: str = PHONE) -> dict[str, Any]:
    item = caps.get_cap(ACCOUNT, category, destination)
    assert item is not None
    return item


def test_allows_max_messages_then_refuses_without_writing(store: None) -> None:
    assert [take(T0 + i) for i in range(3)] == [True, True, True]
    before = stored()
    assert before["sent"] == [T0, T0 + 1, T0 + 2]
    assert before[caps.PURGE_AT] == T0 + 2 + DAY

    assert take(T0 + 3) is False
    assert take(T0 + 4) is False
    assert stored() == before
    assert before["pk"] == f"{ACCOUNT}#CAP#marketing#{PHONE}" and before["sk"] == "CAP"


def test_the_window_slides(store: None) -> None:
    assert take(T0, max_messages=2, period=100)
    assert take(T0 + 10, max_messages=2, period=100)
    assert not take(T0 + 50, max_messages=2, period=100)
    assert not take(T0 + 99.5, max_messages=2, period=100)
    # The send at T0 is now one period old: it no longer counts, and is dropped from the item.
    assert take(T0 + 100, max_messages=2, period=100)
    assert stored()["sent"] == [T0 + 10, T0 + 100]
    assert not take(T0 + 105, max_messages=2, period=100)
    assert take(T0 + 110.25, max_messages=2, period=100)
    assert stored()["sent"] == [T0 + 100, T0 + 110.25]


def test_an_earlier_clock_is_kept_in_order(store: None) -> None:
    assert take(T0 + 5)
    assert take(T0)
    assert stored()["sent"] == [T0, T0 + 5]
    assert stored()[caps.PURGE_AT] == T0 + 5 + DAY


def test_categories_destinations_and_accounts_are_independent(store: None) -> None:
    for i in range(3):
        assert take(T0 + i)
    assert not take(T0 + 3)
    assert take(T0 + 3, category="alerts")
    assert take(T0 + 3, category=caps.ALL_CATEGORIES)
    assert take(T0 + 3, destination="+447700900002")
    assert take(T0 + 3, account="acc_other")
    assert not take(T0 + 4)
    assert stored("alerts")["sent"] == [T0 + 3]


def test_a_category_with_a_hash_is_refused(store: None) -> None:
    with pytest.raises(ValueError):
        take(T0, category="a#b")


def test_give_back_frees_a_slot(store: None) -> None:
    assert take(T0, max_messages=1)
    assert not take(T0 + 1, max_messages=1)
    caps.give_back(ACCOUNT, "marketing", PHONE, at=T0)
    assert stored()["sent"] == []
    assert take(T0 + 2, max_messages=1)
    assert stored()["sent"] == [T0 + 2]


def test_give_back_removes_one_occurrence_and_ignores_what_is_not_there(store: None) -> None:
    caps.give_back(ACCOUNT, "marketing", PHONE, at=T0)  # no cap yet
    assert caps.get_cap(ACCOUNT, "marketing", PHONE) is None

    assert take(T0) and take(T0) and take(T0 + 1)
    caps.give_back(ACCOUNT, "marketing", PHONE, at=T0)
    assert stored()["sent"] == [T0, T0 + 1]
    before = stored()
    caps.give_back(ACCOUNT, "marketing", PHONE, at=T0 + 0.5)  # never counted
    assert stored() == before


@pytest.fixture
def atomic_moto_puts(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto checks a put's condition and then stores the item in two Python steps, which threads can
    interleave; DynamoDB does both at once. A lock makes moto's conditional put atomic like DynamoDB's
    (reads and the gap between a read and a write stay unlocked)."""
    lock = threading.Lock()
    put = Table.put_item

    def locked(self: Table, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return put(self, *args, **kwargs)

    monkeypatch.setattr(Table, "put_item", locked)


def test_two_campaigns_racing_never_exceed_the_cap(
    store: None, atomic_moto_puts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = caps._read

    def slow_read(key: dict[str, Any]) -> dict[str, Any] | None:
        found = read(key)
        time.sleep(0.002)  # a network's round trip: moto answers in microseconds, so races would be rare
        return found

    monkeypatch.setattr(caps, "_read", slow_read)
    start = threading.Barrier(2)
    results: dict[str, list[bool]] = {}
    errors: list[BaseException] = []

    def campaign(name: str) -> None:
        try:
            start.wait()
            results[name] = [
                caps.take(ACCOUNT, "marketing", PHONE, max_messages=7, period_seconds=DAY) for _ in range(20)
            ]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=campaign, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    taken = results["a"] + results["b"]
    assert len(taken) == 40
    assert taken.count(True) == 7
    assert len(stored()["sent"]) == 7


@pytest.mark.parametrize(("max_messages", "expected"), [(1, False), (2, True)])
def test_a_write_between_the_read_and_the_write_is_retried(
    store: None, monkeypatch: pytest.MonkeyPatch, max_messages: int, expected: bool
) -> None:
    """Another campaign takes the same cap after this take read it: the stale write is refused and the
    take decides again on what the other left (refused at max 1, counted beside it at max 2)."""
    read, put = caps._read, caps._put
    puts: list[bool] = []
    injected: list[bool] = []

    def read_then_interfere(key: dict[str, Any]) -> dict[str, Any] | None:
        found = read(key)
        if not injected:
            injected.append(True)
            assert take(T0, max_messages=max_messages)  # the concurrent campaign, which wins
        return found

    def counted_put(item: dict[str, Any], condition: str, values: dict[str, Any] | None) -> Written:
        written = put(item, condition, values)
        puts.append(written.ok)
        return written

    monkeypatch.setattr(caps, "_read", read_then_interfere)
    monkeypatch.setattr(caps, "_put", counted_put)

    assert take(T0 + 1, max_messages=max_messages) is expected
    # The other campaign's put, this take's stale put (refused), and its second put when it may send.
    assert puts == ([True, False, True] if expected else [True, False])
    assert stored()["sent"] == ([T0, T0 + 1] if expected else [T0])


def test_a_cap_that_keeps_changing_gives_up_with_a_clear_error(store: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert take(T0)
    put = caps._put
    puts: list[bool] = []

    def interfered_put(item: dict[str, Any], condition: str, values: dict[str, Any] | None) -> Written:
        aws.dynamodb().update_item(  # another writer moves the version on just before each put
            TableName=get_settings().main_table,
            Key=aws.to_item({"pk": keys.cap_pk(ACCOUNT, "marketing", PHONE), "sk": keys.CAP}),
            UpdateExpression="SET version = version + :one",
            ExpressionAttributeValues=aws.to_values({":one": 1}),
        )
        written = put(item, condition, values)
        puts.append(written.ok)
        return written

    monkeypatch.setattr(caps, "_put", interfered_put)
    with pytest.raises(caps.CapContention, match="10 tries"):
        take(T0 + 1)
    assert puts == [False] * caps.CAS_TRIES
    assert stored()["sent"] == [T0]
