"""The bench's CPU per process: read from /proc for another process, from this one's own clock for itself."""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace
from typing import Any

import pytest

from bench.campaign_run import PRODUCT_PROCESS, PROVIDER, CampaignRun
from bench.cpu import THIS_PROCESS, CpuMeter, process_cpu_seconds
from bench.floor import FLOOR_CLIENT, LOCAL_AWS, FloorRun
from bench.report import SizeResult, _cpu, _cpu_cell

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_a_busy_child_s_cpu_is_read_and_a_sleeping_one_s_is_not_counted() -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.8: pass\n"
    burn += "print(flush=True)\ntime.sleep(30)"
    busy = subprocess.Popen([sys.executable, "-c", burn], stdout=subprocess.PIPE)
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        meter = CpuMeter({"busy": busy.pid, "idle": idle.pid, "gone": 2**22 + 1})
        before = meter.snapshot()
        assert set(before) == {"busy", "idle"}  # a process that does not exist is left out
        assert busy.stdout is not None
        busy.stdout.readline()  # its 0.8 s of CPU are spent (the meter's first reading came before most of it)
        spent = meter.since(before)
        assert 0.5 <= spent["busy"] <= 1.0, spent
        assert spent["idle"] < 0.1, spent
    finally:
        busy.kill()
        idle.kill()


def test_this_process_is_read_from_its_own_clock() -> None:
    before = process_cpu_seconds(THIS_PROCESS)
    started = time.process_time()
    while time.process_time() - started < 0.2:
        pass
    after = process_cpu_seconds(THIS_PROCESS)
    assert before is not None and after is not None and after - before >= 0.2


def test_the_report_cell_gives_the_floor_s_mean_and_each_run_then_the_campaign() -> None:
    assert _cpu_cell([6.0, 6.2], 9.1) == "6.10 (6.00, 6.20); 9.10"
    assert _cpu_cell([6.0], None) == "6.00; -"
    assert _cpu_cell([], None) == "-"


def test_the_cpu_rows_give_ms_per_recipient_of_the_floor_s_process_and_of_the_campaign_s_together() -> None:
    counts: Any = None
    floors = [
        FloorRun(1000, 1.0, 4, 1, counts, (0.0, 0.0), {LOCAL_AWS: 5.0, FLOOR_CLIENT: 2.0}),
        FloorRun(1000, 1.0, 4, 1, counts, (0.0, 0.0), {LOCAL_AWS: 6.0, FLOOR_CLIENT: 2.5}),
    ]
    run: Any = SimpleNamespace(cpu={LOCAL_AWS: 7.0, PRODUCT_PROCESS: 5.0, PROVIDER: 1.0})
    campaign = CampaignRun(1000, 1, run, run, 1.0, {}, {})
    result = SizeResult(1000, floors, [campaign])
    assert _cpu(result, LOCAL_AWS, (LOCAL_AWS,)) == "5.50 (5.00, 6.00); 7.00"
    assert _cpu(result, FLOOR_CLIENT, (PRODUCT_PROCESS, PROVIDER)) == "2.25 (2.00, 2.50); 6.00"
