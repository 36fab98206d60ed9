"""``python -m services.common.health``, the probe of the Docker healthchecks, and the
heartbeat that keeps a health file fresh."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from cli.servers import free_port
from services.common.health import heartbeat


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "services.common.health", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_fresh_file_is_healthy(tmp_path: Path) -> None:
    health = tmp_path / "executor.health"
    health.touch()
    assert probe(str(health), "30").returncode == 0


def test_stale_or_missing_file_is_unhealthy(tmp_path: Path) -> None:
    health = tmp_path / "executor.health"
    missing = probe(str(health), "30")
    assert missing.returncode == 1
    assert "executor.health" in missing.stderr

    health.touch()
    old = time.time() - 60
    os.utime(health, (old, old))
    assert probe(str(health), "30").returncode == 1
    assert probe(str(health), "120").returncode == 0


def test_bad_arguments_print_usage() -> None:
    result = probe("only-one-argument")
    assert result.returncode == 2
    assert "usage" in result.stderr


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_url_probe_needs_a_2xx(http_url: str) -> None:
    assert probe(f"{http_url}/healthz").returncode == 0
    assert probe(f"{http_url}/other").returncode == 1


def test_url_probe_of_nothing_listening_is_unhealthy() -> None:
    assert probe(f"http://127.0.0.1:{free_port()}/healthz").returncode == 1


async def test_heartbeat_touches_while_healthy_and_removes_the_file(tmp_path: Path) -> None:
    health = tmp_path / "run" / "scheduler.health"
    checks: list[bool] = []
    healthy = True

    def check() -> bool:
        checks.append(healthy)
        return healthy

    async with heartbeat(health, healthy=check, interval=0.01):
        first = health.stat().st_mtime_ns
        async with asyncio.timeout(5):
            while health.stat().st_mtime_ns == first:
                await asyncio.sleep(0.01)
        healthy = False
        os.utime(health, (1, 1))
        async with asyncio.timeout(5):  # three beats while unhealthy
            while checks.count(False) < 3:
                await asyncio.sleep(0.01)
        assert health.stat().st_mtime == 1
    assert not health.exists()


async def test_heartbeat_without_a_file_does_nothing() -> None:
    async with heartbeat(None):
        pass
