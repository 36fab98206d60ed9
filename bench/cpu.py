"""CPU time per process, read from /proc, to show where each run's cost goes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system time of a process and its waited-for children (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return sum(int(f) for f in fields[11:15]) / TICKS


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


class Meter:
    """Processes by name; ``take()`` returns CPU seconds of each since the last call."""

    def __init__(self, processes: Mapping[str, int]) -> None:
        self.groups = {name: [pid] for name, pid in processes.items()}
        self.last = self._read()

    def _read(self) -> dict[str, float]:
        totals = {}
        for name, pids in self.groups.items():
            if name == "executor":  # and its workers
                pids = pids[:1] + children(pids[0])
                self.groups[name] = pids
            totals[name] = sum(cpu_seconds(p) for p in pids)
        return totals

    def take(self) -> dict[str, float]:
        now = self._read()
        spent = {name: max(now[name] - self.last.get(name, 0.0), 0.0) for name in now}
        self.last = now
        return spent
