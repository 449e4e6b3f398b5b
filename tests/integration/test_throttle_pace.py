"""A throttled send (429) slows the campaign's pace: the pacing ledger starts no span before the hold-off
ends, so every worker's next chunk waits, and this process's sends wait too (moto in-process)."""

from __future__ import annotations

import time

from chalicelib.operations import outcomes
from chalicelib.store import pace

PK = "acc_1#C#cmp_throttled"


def test_the_ledger_starts_no_span_before_the_hold_off_ends_and_never_moves_back(aws_env: dict[str, str]) -> None:
    assert pace.campaign_span(PK, 10, 10.0, earliest=1_000.0) == 1_000.0  # [1000, 1001)
    pace.hold_off(PK, 2_000.0)
    assert pace.campaign_span(PK, 10, 10.0, earliest=1_500.0) == 2_000.0  # [2000, 2001)
    pace.hold_off(PK, 1_800.0)  # an earlier hold-off does not move it back
    assert pace.campaign_span(PK, 10, 10.0, earliest=1_500.0) == 2_001.0


def test_slowing_down_holds_this_process_s_sends_and_the_ledger(aws_env: dict[str, str]) -> None:
    before = time.time()
    outcomes.slow_down({"pk": PK}, 30.0)
    assert outcomes.THROTTLED.until(PK) >= before + 30
    assert pace.campaign_span(PK, 1, 10.0) >= before + 30
