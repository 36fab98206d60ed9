"""Child processes of the dev stack and the tests: stopping one stops what it started."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from cli.servers import spawn

LEAVES_A_CHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print(child.pid, flush=True)
time.sleep(300)
"""


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_stop_kills_what_the_process_left_behind(tmp_path: Path) -> None:
    proc = spawn("parent", [sys.executable, "-c", LEAVES_A_CHILD], tmp_path)
    deadline = time.monotonic() + 30
    while not proc.log_path.read_text().strip():
        assert proc.alive() and time.monotonic() < deadline, proc.log_tail()
        time.sleep(0.05)
    child = int(proc.log_path.read_text().split()[0])
    assert running(child)

    proc.stop(timeout=5)  # SIGTERM ends the parent, which does not stop its child itself
    assert not proc.alive()
    deadline = time.monotonic() + 10  # SIGKILL is delivered asynchronously
    while running(child):
        assert time.monotonic() < deadline, f"{child} still runs"
        time.sleep(0.01)
