"""A chunk's WhatsApp session windows (decision 46), as dispatch reads them: with the suppressions, in one
BatchGetItem; a window that closes while the chunk is paced is closed at once, without a read; one opened
since the read is seen at the next re-read."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chalicelib.domain.sessions import MARGIN_SECONDS, WINDOW_SECONDS
from chalicelib.store import aws, sessions
from chalicelib.workers import dispatch

ACCOUNT = "acc1"
NUMBER = "+14155550100"
CAMPAIGN = {
    "pk": f"{ACCOUNT}#C#camp1",
    "channel": "whatsapp",
    "sender": NUMBER,
    "template": "Hi",
    "whatsapp": None,
    "category": "transactional",
}


def entry(i: int) -> dict[str, Any]:
    address = f"+1415555{i:04d}"
    return {"id": f"r{i}", "fresh": True, "destinations": [{"type": "whatsapp", "address": address}]}


def test_a_window_closing_while_the_chunk_is_paced_closes_without_a_read(
    aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    closing = now - (WINDOW_SECONDS - MARGIN_SECONDS - 5)  # 5 s left
    sessions.opened(ACCOUNT, NUMBER, "+14155550000", closing)
    sessions.opened(ACCOUNT, NUMBER, "+14155550001", now - 60)
    reads: list[int] = []
    batch_get = aws.batch_get

    def counted(table: str, wanted: list[dict[str, Any]], **kw: Any) -> list[dict[str, Any]]:
        reads.append(len(wanted))
        return batch_get(table, wanted, **kw)

    monkeypatch.setattr(aws, "batch_get", counted)
    checks = dispatch.ChunkSuppressions(CAMPAIGN, [entry(i) for i in range(3)])

    assert checks.session_open(NUMBER, "+14155550000")
    assert checks.session_open("14155550100", "+14155550001")  # the sender as Vonage writes it: the same number
    assert not checks.session_open(NUMBER, "+14155550002")  # never wrote
    assert not checks.holds("whatsapp", "transactional", "+14155550000")  # not suppressed
    assert reads == [6]  # 3 suppression keys and 3 session keys, one request

    later = time.time() + 6
    monkeypatch.setattr(dispatch.time, "time", lambda: later)
    assert not checks.session_open(NUMBER, "+14155550000")  # closed by the clock, the value as read
    assert checks.session_open(NUMBER, "+14155550001")
    assert reads == [6]

    sessions.opened(ACCOUNT, NUMBER, "+14155550002", now)  # wrote after the read
    monkeypatch.setattr(dispatch.time, "monotonic", lambda: time.perf_counter() + 10_000)  # past the recheck
    assert checks.session_open(NUMBER, "+14155550002")
    assert reads == [6, 6]
