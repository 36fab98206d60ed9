"""Helpers for the registry tests: HTTP clients, events, key-value reads, polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from services.common.bus import ensure_streams
from shared.schemas import RunEvent, encoder
from shared.settings import CommonSettings
from shared.subjects import EVENT_KIND_HEADER, Names
from tests.stack import Stack

T = TypeVar("T")


def client(stack: Stack, authorization: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": authorization} if authorization else {}
    return httpx.AsyncClient(base_url=stack.registry_url, headers=headers, timeout=30)


async def new_app(admin: httpx.AsyncClient, name: str = "test") -> tuple[str, str]:
    """A fresh application and an admin key for it: (app_id, key)."""
    created = await admin.post("/v1/applications", json={"name": name})
    assert created.status_code == 201, created.text
    app_id: str = created.json()["id"]
    key = await admin.post(f"/v1/applications/{app_id}/api-keys", json={"name": "admin"})
    assert key.status_code == 201, key.text
    return app_id, key.json()["key"]


async def kv_value(kv: KeyValue, key: str) -> bytes | None:
    """The entry's value, or None when there is none (never written, or deleted)."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:  # also KeyDeletedError
        return None
    return entry.value


async def publish(nc: Client, prefix: str, *events: RunEvent) -> None:
    """Publish events to the EVENTS stream as the gateway and executor do."""
    js = nc.jetstream()
    await ensure_streams(js, CommonSettings(prefix=prefix))
    names = Names(prefix)
    for event in events:
        kind = type(event).__struct_config__.tag
        await js.publish(
            names.events(event.app_id, event.worklet_id, event.run_id),
            encoder.encode(event),
            headers={EVENT_KIND_HEADER: str(kind)},
        )


async def eventually(
    check: Callable[[], Awaitable[T | None]], what: str, timeout: float = 15.0
) -> T:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


async def kv_entries(kv: KeyValue, nc: Client, prefix: str) -> dict[str, bytes]:
    """Every live entry of the index bucket, listed from its stream (``KeyValue.keys()`` can
    miss entries when the server delivers before its watcher is set up)."""
    bucket = Names(prefix).index_bucket
    info = await nc.jetstream().stream_info(f"KV_{bucket}", subjects_filter=f"$KV.{bucket}.>")
    keys = [subject.split(".", 2)[2] for subject in info.state.subjects or {}]
    values = {key: await kv_value(kv, key) for key in keys}
    return {key: value for key, value in values.items() if value is not None}
