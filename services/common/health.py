"""Liveness for services without an HTTP port, and the probe Docker healthchecks run.

A service that has no ``/healthz`` (executor, scheduler) touches its health file while it is
well; ``heartbeat`` does that from an asyncio task. The probe is a command line::

    python -m services.common.health FILE MAX_AGE_SECONDS   # 0 if FILE was touched recently
    python -m services.common.health URL                    # 0 if GET URL answers 2xx

It imports nothing heavy, so a healthcheck that runs every few seconds stays cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 5.0  # seconds between touches; healthchecks allow several missed ones


def touch(path: str | Path) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.touch()


def remove(path: str | Path) -> None:
    Path(path).unlink(missing_ok=True)


def is_fresh(path: str | Path, max_age: float, now: float | None = None) -> bool:
    """True if ``path`` exists and was modified at most ``max_age`` seconds ago."""
    try:
        modified = Path(path).stat().st_mtime
    except OSError:
        return False
    return (time.time() if now is None else now) - modified <= max_age


def url_ok(url: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


@contextlib.asynccontextmanager
async def heartbeat(
    path: str | Path | None,
    healthy: Callable[[], bool] = lambda: True,
    interval: float = HEARTBEAT_INTERVAL,
) -> AsyncIterator[None]:
    """Touch ``path`` now and every ``interval`` seconds while ``healthy()``; remove it on exit.

    With ``path`` None (no health file configured) this does nothing.
    """
    if path is None:
        yield
        return

    async def beat() -> None:
        while True:
            if healthy():
                touch(path)
            else:
                log.warning("unhealthy: not touching %s", path)
            await asyncio.sleep(interval)

    touch(path)
    task = asyncio.create_task(beat(), name=f"heartbeat {path}")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        remove(path)


USAGE = (
    "usage: python -m services.common.health FILE MAX_AGE_SECONDS\n"
    "       python -m services.common.health URL\n"
)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 1 and args[0].startswith(("http://", "https://")):
        if url_ok(args[0]):
            return 0
        sys.stderr.write(f"unhealthy: {args[0]} did not answer 2xx\n")
        return 1
    if len(args) != 2:
        sys.stderr.write(USAGE)
        return 2
    try:
        max_age = float(args[1])
    except ValueError:
        sys.stderr.write(USAGE)
        return 2
    if is_fresh(args[0], max_age):
        return 0
    sys.stderr.write(f"unhealthy: {args[0]} missing or not touched for {max_age:g}s\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
