"""Send windows at dispatch: recipients outside their window in their own local time wait, counted as
queued and due when it opens, and are sent then; the rest go out as usual."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.operations.pacer import release_campaign
from chalicelib.store import aws, campaigns, deliveries, window_waits
from infra.local.client import valid_phone
from tests.faults.harness import Harness
from tests.integration.test_stats import pk_of

pytestmark = pytest.mark.faults

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def closed_today(zone_day: int) -> dict[str, Any]:
    """Open all day, every day but `zone_day` (0 is Monday)."""
    return {"start": "00:00", "end": "23:59", "days": [d for n, d in enumerate(DAYS) if n != zone_day]}


def meta(pk: str) -> dict[str, Any]:
    found = campaigns.get_campaign_by_pk(pk)
    assert found is not None
    return found


def count_dynamodb_calls() -> Counter[str]:
    """DynamoDB requests made from now on, by operation."""
    calls: Counter[str] = Counter()
    aws.dynamodb().meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.update([model.name]))
    return calls


def recipient(name: str, n: int, timezone: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": name,
        "destinations": [{"type": "phone", "address": valid_phone(n)}],
        "attributes": {"first_name": name},
    }
    if timezone:
        row["timezone"] = timezone
    return row


def test_recipients_outside_their_window_wait_queued_until_it_opens_and_the_others_are_sent(
    harness: Harness,
) -> None:
    now = datetime.now(UTC)
    if now.hour == 23 and now.minute >= 50:
        pytest.skip("the test's windows are computed from today's date; too close to midnight UTC")
    # Closed today in UTC; in a zone on another date now (UTC+14 from 10:00 UTC, else UTC-12) it is open.
    window = closed_today(now.weekday())
    elsewhere = "Pacific/Kiritimati" if now.hour >= 10 else "Etc/GMT+12"
    rows = [recipient(f"utc{n}", n, "UTC") for n in range(4)]
    rows += [recipient(f"away{n}", 10 + n, elsewhere) for n in range(3)]
    campaign = harness.campaign(rows, window=window)
    assert campaign["window"]["days"] == window["days"]
    current = harness.run(campaign["id"], rounds=5)
    assert current["status"] == "running"
    assert current["counters"]["succeeded"] == 3 and current["counters"]["queued"] == 4
    sent = {m["to"] for m in harness.provider.messages()}
    assert sent == {valid_phone(10 + n).removeprefix("+") for n in range(3)}
    # Held by the release, not handed to dispatch: not yet released (pending), with no delivery written.
    waiting = {o["recipient_id"]: o for o in harness.outcomes(campaign["id"]) if o["state"] == "pending"}
    assert set(waiting) == {f"utc{n}" for n in range(4)}
    pk = pk_of(harness.tenant, campaign)
    assert deliveries.deliveries_of(pk, 1, list(waiting)) == []
    opens = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert meta(pk)["window_next"] == opens.timestamp()

    # Until the window opens, a release tick reads neither the list nor the held recipients.
    calls = count_dynamodb_calls()
    assert release_campaign(pk, now=opens.timestamp() - 1) == 0
    assert calls == {"GetItem": 1}, calls  # the campaign itself

    # At the opening (the pacer asked as of then), the waiting ones are released and sent: the window is
    # removed first, since this test's clock cannot move to tomorrow for dispatch.
    harness.tenant.ok("PATCH", f"/v1/campaigns/{campaign['id']}", {"window": None})
    assert release_campaign(pk, now=opens.timestamp() + 1) == 4
    final = harness.settle(harness.run(campaign["id"]), 7)
    assert final["succeeded"] == 7
    assert len(harness.provider.messages()) == 7


def test_held_recipients_whose_window_closed_again_are_held_anew_and_counted_once(harness: Harness) -> None:
    now = datetime.now(UTC)
    if now.hour == 23 and now.minute >= 50:
        pytest.skip("the test's windows are computed from today's date; too close to midnight UTC")
    rows = [recipient(f"utc{n}", n, "UTC") for n in range(3)]
    campaign = harness.campaign(rows, window=closed_today(now.weekday()))
    harness.run(campaign["id"], rounds=3)
    pk = pk_of(harness.tenant, campaign)
    opens = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    # The window now also closes tomorrow: at tomorrow's opening the group is read, and held until the day after.
    tomorrow = (now.weekday() + 1) % 7
    days = [d for n, d in enumerate(DAYS) if n not in (now.weekday(), tomorrow)]
    harness.tenant.ok(
        "PATCH", f"/v1/campaigns/{campaign['id']}", {"window": {"start": "00:00", "end": "23:59", "days": days}}
    )
    assert release_campaign(pk, now=opens.timestamp() + 1) == 0
    current = meta(pk)
    assert current["windowed"] == 3
    assert current["window_next"] == (opens + timedelta(days=1)).timestamp()
    assert window_waits.next_opening(pk) == (opens + timedelta(days=1)).timestamp()
    view = harness.tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")
    assert view["counters"]["queued"] == 3 and view["counters"]["total"] == 3
    assert harness.provider.messages() == []


def test_a_partial_send_keeps_held_recipients_read_after_it_for_the_next_release(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    if now.hour == 23 and now.minute >= 50:
        pytest.skip("the test's windows are computed from today's date; too close to midnight UTC")
    elsewhere = "Pacific/Kiritimati" if now.hour >= 10 else "Etc/GMT+12"
    rows = [recipient(f"r{n}", n, "UTC" if n % 2 else elsewhere) for n in range(6)]
    campaign = harness.campaign(rows, window=closed_today(now.weekday()), rate_per_second=5)
    pk = pk_of(harness.tenant, campaign)
    from chalicelib.operations import pacer

    real_send = pacer._send
    monkeypatch.setattr(pacer, "_send", lambda pk, c, plan, entries: min(1, real_send(pk, c, plan, entries[:1])))
    release_campaign(pk)
    monkeypatch.setattr(pacer, "_send", real_send)
    later = time.time() + 600
    for tick in range(3):
        release_campaign(pk, now=later + 10 * tick)
    current = meta(pk)
    # Every recipient counted once: released (open) or held (closed), whatever the first release read.
    assert current["windowed"] == 3
    assert int(current["released"]) == 3
    assert sum(len(g["recipients"]) for g in window_waits.due_groups(pk, time.time() + 3 * 86_400, 10)) == 3


def zone_at_local_hour(hour: int) -> str:
    """An Etc/GMT zone whose local hour is `hour` now."""
    offset = (hour - datetime.now(UTC).hour + 12) % 24 - 12  # -12..11
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def test_a_marketing_campaign_sends_in_the_tcpa_hours_and_a_transactional_one_at_any_hour(harness: Harness) -> None:
    if datetime.now(UTC).minute >= 55:
        pytest.skip("the zones are picked by the current hour; too close to the next one")
    rows = [recipient("noon", 0, zone_at_local_hour(12)), recipient("night", 1, zone_at_local_hour(3))]
    marketing = harness.campaign(rows, category="marketing")
    assert (marketing["category"], marketing["window"], marketing["timezone"]) == ("marketing", None, "UTC")
    current = harness.run(marketing["id"], rounds=4)
    states = {o["recipient_id"]: o["state"] for o in harness.outcomes(marketing["id"])}
    # The night one is held by the release for its window: not released yet, so pending (and counted queued).
    assert states == {"noon": "succeeded", "night": "pending"}, current["counters"]
    assert current["counters"]["queued"] == 1

    transactional = harness.campaign([recipient("night2", 2, zone_at_local_hour(3))])
    assert transactional["category"] == "transactional"
    final = harness.run(transactional["id"])
    assert final["status"] == "completed" and final["counters"]["succeeded"] == 1
    assert valid_phone(2).removeprefix("+") in {m["to"] for m in harness.provider.messages()}


def test_a_window_or_zone_it_cannot_honour_is_refused_naming_the_field(harness: Harness) -> None:
    import json

    from tests.utils import campaign_body

    listed = harness.tenant.ok("POST", "/v1/lists", {"name": "w"}, status=201)
    for fields, name in (
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"window": {"start": "21:00", "end": "08:00"}}, "window"),
        ({"category": "promotional"}, "category"),
    ):
        answer = harness.tenant.call("POST", "/v1/campaigns", campaign_body(listed["id"], **fields))
        assert answer.status_code == 422, fields
        assert json.loads(answer.body)["errors"][0]["field"].startswith(name), answer.body


def test_recipients_held_for_their_window_expire_with_the_campaign(harness: Harness) -> None:
    from tests.faults.test_expiry import ends_expired, expire_soon

    now = datetime.now(UTC)
    if now.hour == 23 and now.minute >= 50:
        pytest.skip("the test's windows are computed from today's date; too close to midnight UTC")
    elsewhere = "Pacific/Kiritimati" if now.hour >= 10 else "Etc/GMT+12"
    rows = [recipient(f"r{n}", n, "UTC" if n % 2 else elsewhere) for n in range(6)]
    campaign = harness.campaign(rows, window=closed_today(now.weekday()))
    harness.run(campaign["id"], rounds=4)
    held = meta(pk_of(harness.tenant, campaign))
    assert held["release_exhausted"] and held["windowed"] == 3
    expire_soon(harness, campaign)
    counters = ends_expired(harness, campaign, 6)
    assert (counters["succeeded"], counters["expired"]) == (3, 3)
    assert len(harness.provider.messages()) == 3
