"""Closing an attempt: the conditions that keep one outcome per attempt, and what the delivery keeps."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chalicelib.domain.delivery import DeliveryState
from chalicelib.store import deliveries

pytestmark = pytest.mark.integration

PK, RID = "acc_1#C#cmp_1#0", "r1"


def _claimed() -> None:
    assert deliveries.claim_first(PK, RID, "token-1", (0, "+447700900001")).ok


def _delivery() -> dict[str, Any]:
    found = deliveries.get_delivery(PK, RID)
    assert found is not None
    return found


def test_the_sender_s_outcome_replaces_an_unknown_of_the_same_attempt(aws_env: dict[str, str]) -> None:
    """A duplicate delivery of the chunk found the claim in flight and wrote `unknown`; the worker that made
    the send then writes what the provider said."""
    _claimed()
    assert deliveries.record_outcome(PK, RID, 1, DeliveryState.UNKNOWN, provider_message_id=None, error="maybe")
    assert deliveries.record_outcome(PK, RID, 1, DeliveryState.SUCCEEDED, provider_message_id="m-1", error=None)
    delivery = _delivery()
    assert (delivery["state"], delivery["provider_message_id"]) == ("succeeded", "m-1")
    assert "last_error" not in delivery  # the unknown's note is not the succeeded attempt's


def test_an_unknown_does_not_replace_an_unknown(aws_env: dict[str, str]) -> None:
    """The worker that sent wrote unknown (a timeout after sending); a dead-letter consumer or a duplicate
    chunk must not replace its error with theirs."""
    _claimed()
    assert deliveries.record_outcome(PK, RID, 1, DeliveryState.UNKNOWN, provider_message_id=None, error="timeout")
    assert not deliveries.record_outcome(PK, RID, 1, DeliveryState.UNKNOWN, provider_message_id=None, error="dup")
    assert _delivery()["last_error"] == "timeout"


def test_a_closed_attempt_is_not_closed_again(aws_env: dict[str, str]) -> None:
    _claimed()
    assert deliveries.record_outcome(PK, RID, 1, DeliveryState.SUCCEEDED, provider_message_id="m-1", error=None)
    assert not deliveries.record_outcome(PK, RID, 1, DeliveryState.FAILED, provider_message_id=None, error="late")
    assert not deliveries.record_outcome(PK, RID, 1, DeliveryState.UNKNOWN, provider_message_id=None, error="dup")
    assert _delivery()["state"] == "succeeded"


def test_an_unknown_of_another_attempt_is_not_closed(aws_env: dict[str, str]) -> None:
    _claimed()
    assert deliveries.record_outcome(PK, RID, 1, DeliveryState.UNKNOWN, provider_message_id=None, error="maybe")
    assert not deliveries.record_outcome(PK, RID, 2, DeliveryState.SUCCEEDED, provider_message_id="m-2", error=None)
    assert _delivery()["state"] == "unknown"


def test_a_retry_closes_an_unknown_attempt_and_keeps_its_record(aws_env: dict[str, str]) -> None:
    _claimed()
    assert deliveries.record_outcome(PK, RID, 1, DeliveryState.UNKNOWN, provider_message_id=None, error="maybe")
    record = {"attempt": 1, "outcome": "retry", "started_at": 1.0, "ended_at": 2.0}
    assert deliveries.schedule_retry(PK, RID, 1, 10.0, "503", {"id": RID}, next_destination=(0, 2), record=record)
    delivery = _delivery()
    assert delivery["state"] == "queued" and "ended_at" not in delivery
    assert [r["outcome"] for r in delivery["history"]] == ["retry"]


def test_every_delivery_carries_its_retention_ttl_from_its_claim(
    aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DynamoDB deletes a delivery at its `expires_at`: the retention after its last attempt started, written
    by the claim of each attempt, so a delivery sent, retried, parked or never sent is deleted in the end."""
    from chalicelib.settings import get_settings

    monkeypatch.setattr(get_settings(), "delivery_retention_days", 2)
    retention = 2 * 86_400
    started = time.time()
    _claimed()
    assert deliveries.record_outcome(PK, RID, 1, DeliveryState.SUCCEEDED, provider_message_id="m-1", error=None)
    assert started + retention - 1 <= _delivery()["expires_at"] <= time.time() + retention

    record = {"attempt": 1, "outcome": "retry", "started_at": 1.0, "ended_at": 2.0}
    assert deliveries.claim_first(PK, "r2", "token-1", (0, "+447700900002")).ok
    assert deliveries.schedule_retry(PK, "r2", 1, 10.0, "503", {"id": "r2"}, next_destination=(0, 2), record=record)
    monkeypatch.setattr(get_settings(), "delivery_retention_days", 3)  # the next claim writes its own
    assert deliveries.claim_queued(PK, "r2", 1, "token-2", (0, "+447700900002"), 2).ok
    retried = deliveries.get_delivery(PK, "r2")
    assert retried is not None and retried["expires_at"] >= started + 3 * 86_400 - 1

    assert deliveries.park_unsent(PK, "r3", {"id": "r3"}).ok
    assert deliveries.skip_unsent(PK, "r4", "excluded").ok
    for rid in ("r3", "r4"):
        kept = deliveries.get_delivery(PK, rid)
        assert kept is not None and kept["expires_at"] >= started + 3 * 86_400 - 1
