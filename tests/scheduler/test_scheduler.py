"""The minimal scheduler process: connects to NATS, keeps its health file fresh, stops cleanly."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import nats
import pytest

from tests.stack import Servers, Stack

pytestmark = pytest.mark.integration


def healthcheck(health_file: Path, max_age: str = "30") -> int:
    argv = [sys.executable, "-m", "services.common.health", str(health_file), max_age]
    return subprocess.run(argv, capture_output=True, timeout=30).returncode


async def stream_subjects(nats_url: str, stream: str) -> list[str]:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(stream)
        return list(info.config.subjects or [])
    finally:
        await nc.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_scheduler_runs_until_a_signal_then_exits_cleanly(
    servers: Servers, tmp_path: Path, sig: signal.Signals
) -> None:
    with Stack(servers, tmp_path) as stack:
        proc = stack.start("scheduler")  # returns once the health file exists
        health = Path(stack.env("scheduler")["WORKLETS_HEALTH_FILE"])
        assert healthcheck(health) == 0

        # connecting declared the streams every service relies on
        subjects = asyncio.run(stream_subjects(servers.nats_url, stack.names.runs_stream))
        assert subjects == [stack.names.runs_all]

        proc.kill(sig)
        assert proc.popen.wait(timeout=15) == 0, proc.log_tail()
        assert not health.exists()
        assert healthcheck(health) == 1
