"""The executor process: wiring, lifecycle and the health file.

Start-up: hide from workers (not dumpable), connect NATS (streams declared), open the read
model views, start the warm worker pool, then consume RUNS. SIGTERM/SIGINT: stop fetching,
finish or nak the runs in flight, stop the workers, drain NATS.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TypeVar

from services.common.bus import index_bucket, nats_connection
from services.common.health import heartbeat
from services.common.index import IndexView
from services.common.logs import setup_logging
from services.common.wire import Wire
from services.executor.confine import make_undumpable
from services.executor.consumer import Consumer
from services.executor.events import Events
from services.executor.runtime import Runtime
from services.executor.sandbox import Pool
from shared.schemas import SecretEntry, WorkletHead, WorkletVersion
from shared.settings import ExecutorSettings

log = logging.getLogger(__name__)

T = TypeVar("T")


@asynccontextmanager
async def watching(view: IndexView[T]) -> AsyncIterator[IndexView[T]]:
    await view.start()
    try:
        yield view
    finally:
        await view.stop()


async def serve(settings: ExecutorSettings) -> None:
    executor_id = f"{socket.gethostname()}-{os.getpid()}"
    log.info("executor %s starting", executor_id)
    make_undumpable()
    async with AsyncExitStack() as stack:
        nc = await stack.enter_async_context(nats_connection(settings, f"executor {executor_id}"))
        js = nc.jetstream()
        log.debug("connected to %s", settings.nats_url)
        kv = await index_bucket(js, settings)
        heads = await stack.enter_async_context(watching(IndexView(kv, "worklet.>", WorkletHead)))
        secrets = await stack.enter_async_context(watching(IndexView(kv, "secret.>", SecretEntry)))
        versions = IndexView(kv, "version.>", WorkletVersion, watch=False)  # immutable
        pool = await stack.enter_async_context(Pool(settings))
        wire = Wire(nc)
        await wire.start()
        stack.push_async_callback(wire.stop)
        runtime = Runtime(
            settings=settings,
            events=Events(wire, settings, executor_id),
            pool=pool,
            versions=versions,
            heads=heads,
            secrets=secrets,
        )
        consumer = Consumer(nc, settings, runtime, wire)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, consumer.stop)
        await consumer.start()
        async with heartbeat(settings.health_file, healthy=lambda: nc.is_connected):
            await consumer.serve()
    log.info("executor %s stopped", executor_id)


def main() -> None:
    settings = ExecutorSettings()
    setup_logging(settings.log_level, "executor")
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(settings))
    else:
        uvloop.run(serve(settings))
