"""Connecting to NATS and declaring the streams and bucket every service relies on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError
from nats.js.kv import KeyValue

from shared.settings import CommonSettings

log = logging.getLogger(__name__)

EVENTS_MAX_AGE = 7 * 24 * 3600.0  # seconds the EVENTS stream keeps events (MongoDB keeps runs)
DUPLICATE_WINDOW = (
    600.0  # seconds: repeated run requests (scheduler replicas) and terminal events are dropped
)
MAX_MSG_BYTES = 8 * 1024 * 1024  # matches max_payload in deploy/nats.conf


async def _on_error(err: Exception) -> None:
    log.warning("nats: %s", err)


async def _on_disconnect() -> None:
    log.warning("nats: disconnected, reconnecting")


async def _on_reconnect() -> None:
    log.info("nats: reconnected")


async def connect(settings: CommonSettings, name: str, wait: float = 30.0) -> Client:
    """Connect, retrying for up to ``wait`` seconds while the server comes up."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        try:
            return await nats.connect(
                settings.nats_url,
                name=name,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.25,
                connect_timeout=2,
                error_cb=_on_error,
                disconnected_cb=_on_disconnect,
                reconnected_cb=_on_reconnect,
            )
        except (TimeoutError, OSError, nats.errors.NoServersError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


def stream_configs(settings: CommonSettings) -> list[StreamConfig]:
    names = settings.names
    return [
        StreamConfig(
            name=names.runs_stream,
            subjects=[names.runs_all],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW,
            max_msg_size=MAX_MSG_BYTES,
        ),
        StreamConfig(
            name=names.events_stream,
            subjects=[names.events_all],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=EVENTS_MAX_AGE,
            duplicate_window=DUPLICATE_WINDOW,
            max_msg_size=MAX_MSG_BYTES,
            allow_direct=True,
        ),
    ]


async def ensure_streams(js: JetStreamContext, settings: CommonSettings) -> None:
    """Create the RUNS and EVENTS streams, or bring an existing one to this configuration."""
    for config in stream_configs(settings):
        try:
            await js.add_stream(config)
        except BadRequestError:
            await js.update_stream(config)


async def index_bucket(js: JetStreamContext, settings: CommonSettings) -> KeyValue:
    """The key-value bucket the registry keeps as the read model of keys and worklets."""
    return await js.create_key_value(
        KeyValueConfig(
            bucket=settings.names.index_bucket,
            history=1,
            storage=StorageType.FILE,
            max_value_size=MAX_MSG_BYTES,
        )
    )


@asynccontextmanager
async def nats_connection(settings: CommonSettings, name: str) -> AsyncIterator[Client]:
    """Connect, declare streams, yield; drain on the way out."""
    nc = await connect(settings, name)
    try:
        await ensure_streams(nc.jetstream(), settings)
        yield nc
    finally:
        try:
            await asyncio.wait_for(nc.drain(), timeout=5)
        except (TimeoutError, nats.errors.ConnectionClosedError):
            await nc.close()
