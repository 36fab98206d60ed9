"""Wiring of the scheduler process: settings, logging, NATS, the feeds, APScheduler, health.

Start-up order: connect (which declares the streams), open the ``{P}_INDEX`` bucket and the
scheduler's own ``{P}_SCHEDULER`` bucket, follow the worklet heads (``worklet.>``), start
APScheduler, then follow ``schedule.>``: the current schedules become jobs at once, later
changes as they happen. The health file is touched while NATS is connected and the feeds and
APScheduler run. SIGTERM or SIGINT stops firing, lets firings in flight publish (up to
``STOP_WAIT`` seconds), then drains the connection.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack

from services.common.bus import index_bucket, nats_connection
from services.common.health import heartbeat
from services.common.index import IndexView
from services.common.logs import setup_logging
from services.scheduler.feed import Feed
from services.scheduler.firing import Firer, last_fired_bucket
from services.scheduler.timetable import Timetable
from shared.schemas import ScheduleEntry, WorkletHead
from shared.settings import SchedulerSettings

log = logging.getLogger(__name__)

STOP_WAIT = 5.0  # seconds firings in flight may take to publish when stopping


async def serve(settings: SchedulerSettings, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set."""
    async with AsyncExitStack() as stack:
        nc = await stack.enter_async_context(nats_connection(settings, "worklets-scheduler"))
        js = nc.jetstream()
        index = await index_bucket(js, settings)
        last_fired = await last_fired_bucket(nc, settings)

        def reconnects() -> int:
            return int(nc.stats["reconnects"])

        heads = IndexView(index, "worklet.>", WorkletHead, watch=False)
        worklets = Feed(index, "worklet.>", WorkletHead, heads.put, heads.delete, reconnects)
        await worklets.start()
        stack.push_async_callback(worklets.stop)

        timetable = Timetable(Firer(nc, settings, heads, last_fired).fire, settings.misfire_grace)
        timetable.start()
        stack.push_async_callback(timetable.stop, STOP_WAIT)

        schedules = Feed(
            index, "schedule.>", ScheduleEntry, timetable.put, timetable.delete, reconnects
        )
        await schedules.start()
        stack.push_async_callback(schedules.stop)

        def healthy() -> bool:
            following = schedules.alive and worklets.alive
            return bool(nc.is_connected) and following and timetable.running

        await stack.enter_async_context(heartbeat(settings.health_file, healthy=healthy))
        log.info(
            "scheduler ready (prefix %s): %d schedules, misfire grace %.0f s",
            settings.prefix,
            len(timetable),
            settings.misfire_grace,
        )
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
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    asyncio.run(run(settings))
