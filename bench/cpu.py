"""CPU seconds of the processes a bench run uses, read from /proc (Linux; empty elsewhere).

A rate on this shared 2-core machine moves by a fifth between runs minutes apart; the CPU each recipient
costs in each process moves less, and says where the campaign's time goes beside the floor's: in the local
AWS (moto's server, the same process kind in both), in the product's process (the API, the event runner and
the handlers) or in the floor's client.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

THIS_PROCESS = 0  # the pid that stands for the process measuring


def process_cpu_seconds(pid: int) -> float | None:
    """User and system CPU seconds of a process so far (`utime` + `stime`); None when it cannot be read."""
    if pid == THIS_PROCESS:
        return time.process_time()
    try:
        # The command name may hold spaces and parentheses: the fields are read after its last ')'.
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class CpuMeter:
    """CPU seconds of named processes between two snapshots."""

    pids: dict[str, int] = field(default_factory=dict)  # name -> pid (THIS_PROCESS for the measuring one)

    def snapshot(self) -> dict[str, float]:
        seconds = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        return {name: value for name, value in seconds.items() if value is not None}

    def since(self, before: dict[str, float]) -> dict[str, float]:
        now = self.snapshot()
        return {name: now[name] - before[name] for name in before if name in now}
