"""One executor process for the executor tests (ack wait 1 s, so in-progress acks matter),
driven over NATS by a Harness; the tests that kill executors start their own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.aio.client import Client

from services.common.bus import ensure_streams, index_bucket
from services.common.sealing import Sealer
from shared.settings import CommonSettings
from tests.executor.harness import EventLog, Harness
from tests.stack import Servers, Stack

EXECUTOR_ENV = {
    "WORKLETS_ACK_WAIT": "1",
    "WORKLETS_WORKERS": "2",
    "WORKLETS_WORKER_MEMORY_MB": "256",
    "WORKLETS_MAX_DEPTH": "3",
    "WORKLETS_MAX_TRACE_BYTES": "65536",
    "WORKLETS_SHUTDOWN_GRACE": "1",
    "WORKLETS_LOG_LEVEL": "DEBUG",
}


@pytest.fixture(scope="package")
def executor(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(servers, tmp_path_factory.mktemp("executor"), **EXECUTOR_ENV) as stack:
        stack.start("executor")
        yield stack


async def connect_harness(stack: Stack) -> tuple[Harness, Client]:
    nc = await nats.connect(stack.servers.nats_url)
    settings = CommonSettings(nats_url=stack.servers.nats_url, prefix=stack.prefix)
    js = nc.jetstream()
    await ensure_streams(js, settings)
    kv = await index_bucket(js, settings)
    log = EventLog()
    await nc.subscribe(settings.names.events_all, cb=log.on_msg)
    return Harness(nc, settings.names, kv, log, Sealer(stack.secrets_key)), nc


@pytest.fixture(scope="package")
async def harness(executor: Stack) -> AsyncIterator[Harness]:
    h, nc = await connect_harness(executor)
    try:
        yield h
    finally:
        await nc.close()
        if not executor.processes["executor"].alive():
            raise AssertionError(f"the executor died:\n{executor.logs()}")
