"""Send windows at dispatch: recipients outside their window in their own local time wait, counted as
queued and due when it opens, and are sent then; the rest go out as usual."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from infra.local.client import valid_phone
from tests.faults.harness import Harness

pytestmark = pytest.mark.faults

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def closed_today(zone_day: int) -> dict[str, Any]:
    """Open all day, every day but `zone_day` (0 is Monday)."""
    return {"start": "00:00", "end": "23:59", "days": [d for n, d in enumerate(DAYS) if n != zone_day]}


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
    waiting = {o["recipient_id"]: o for o in harness.outcomes(campaign["id"]) if o["state"] == "queued"}
    assert set(waiting) == {f"utc{n}" for n in range(4)}
    opens = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert {o["next_attempt_at"] for o in waiting.values()} == {opens.isoformat().replace("+00:00", "Z")}

    # At the opening (the pacer asked as of then), the waiting ones are released and sent: the window is
    # removed first, since this test's clock cannot move to tomorrow for dispatch.
    harness.tenant.ok("PATCH", f"/v1/campaigns/{campaign['id']}", {"window": None})
    from chalicelib.operations.pacer import release_campaign
    from tests.integration.test_stats import pk_of

    assert release_campaign(pk_of(harness.tenant, campaign), now=opens.timestamp() + 1) == 4
    harness.settle(harness.run(campaign["id"]), 7)


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
    assert states == {"noon": "succeeded", "night": "queued"}, current["counters"]

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
