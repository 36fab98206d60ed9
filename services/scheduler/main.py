"""Wiring of the scheduler process: settings, logging, NATS, health file, signals.

Scheduling arrives with the scheduler issue; until then the process connects to NATS (which
also declares the streams), touches ``settings.health_file`` while connected, and exits cleanly
on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from services.common.bus import nats_connection
from services.common.health import heartbeat
from services.common.logs import setup_logging
from shared.settings import SchedulerSettings

log = logging.getLogger(__name__)


async def serve(settings: SchedulerSettings, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set."""
    async with (
        nats_connection(settings, "worklets-scheduler") as nc,
        heartbeat(settings.health_file, healthy=lambda: bool(nc.is_connected)),
    ):
        log.info("scheduler ready (prefix %s)", settings.prefix)
        await stop.wait()
        log.info("scheduler stopping")


async def run(settings: SchedulerSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop)


def main() -> None:
    settings = SchedulerSettings()
    setup_logging(settings.log_level, "scheduler")
    asyncio.run(run(settings))
