"""LocalStack(runner_process=True): the app's event runner as its own process, killed and restarted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infra.local.stack import LocalStack

pytestmark = pytest.mark.integration


def test_the_stack_kills_and_restarts_its_runner_process() -> None:
    with LocalStack(runner_process=True, schedule_tick_seconds=0.5) as stack:
        assert stack.runner is None  # not in this process
        assert stack.wait_runner_idle(timeout=60)
        status = stack.runner_status()
        assert status is not None
        killed = status["pid"]

        stack.kill_runner()
        assert stack.runner_status() is None
        with pytest.raises(ProcessLookupError):
            os.kill(killed, 0)

        stack.restart_runner()
        restarted = stack.runner_status()
        assert restarted is not None and restarted["pid"] != killed
        assert stack.wait_runner_idle(timeout=60)
        after = stack.runner_status()
        assert after is not None and after["invocations"].get("release_tick", 0) >= 1 and after["errors"] == {}


def test_killing_the_runner_needs_it_in_its_own_process(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="runner_process=True"):
        LocalStack(log_dir=tmp_path).kill_runner()
