"""One gateway process for the gateway tests, with keys and worklet heads put straight into the
key-value read model (as the registry would) and a test double of the executor."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from services.common.bus import index_bucket
from services.common.ids import new_id
from shared.schemas import ApiKeyEntry, Role, WorkletHead, WorkletSettings, encoder
from shared.settings import CommonSettings
from shared.subjects import Names
from tests.gateway.doubles import ExecutorDouble
from tests.stack import Servers, Stack

MAX_BODY = 64 * 1024
ORIGIN = "https://console.example"


@pytest.fixture(scope="session")
def gateway(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A gateway whose waits run out 0.2 s after a run's timeout."""
    env = {
        "WORKLETS_SYNC_WAIT_MARGIN": "0.2",
        "WORKLETS_MAX_BODY_BYTES": str(MAX_BODY),
        "WORKLETS_CORS_ORIGINS": json.dumps([ORIGIN]),
        "WORKLETS_LOG_LEVEL": "DEBUG",
    }
    with Stack(servers, tmp_path_factory.mktemp("gateway"), **env) as stack:
        stack.start("gateway")
        yield stack


@dataclass
class World:
    """The gateway under test, its NATS neighbourhood, and three applications:

    ``app`` (its runs are executed by the executor double), ``idle`` (nothing executes its
    runs) and ``other`` (a third party whose key must not open the first two).
    """

    stack: Stack
    nc: Client
    js: JetStreamContext
    kv: KeyValue
    names: Names
    http: httpx.AsyncClient
    executor: ExecutorDouble
    app: str
    idle: str
    other: str
    keys: dict[str, str]  # app id -> an admin key of it

    async def add_key(self, app_id: str, role: Role = "admin") -> str:
        key = "wk_" + secrets.token_urlsafe(24)
        entry = ApiKeyEntry(key_id=new_id(), app_id=app_id, role=role)
        await self.kv.put(self.key_entry(key), encoder.encode(entry))
        return key

    @staticmethod
    def key_entry(key: str) -> str:
        return Names.key_entry(hashlib.sha256(key.encode()).hexdigest())

    async def add_worklet(self, app_id: str, **settings: Any) -> str:
        worklet_id = new_id()
        head = WorkletHead(
            app_id=app_id,
            worklet_id=worklet_id,
            name=f"w-{worklet_id}",
            version=3,
            settings=WorkletSettings(**settings),
        )
        await self.kv.put(Names.worklet_head(app_id, worklet_id), encoder.encode(head))
        return worklet_id

    def auth(self, app_id: str) -> dict[str, str]:
        return {"Authorization": f"Api-Key {self.keys[app_id]}"}

    async def invoke(
        self, app_id: str, worklet_id: str, body: Any, key: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Api-Key {key}"} if key else self.auth(app_id)
        url = f"/applications/{app_id}/worklets/{worklet_id}/invoke"
        return await self.http.post(url, json=body, headers=headers)

    async def poll(
        self, app_id: str, worklet_id: str, run_id: str, method: str = "GET"
    ) -> httpx.Response:
        url = f"/applications/{app_id}/worklets/{worklet_id}/{run_id}"
        return await self.http.request(method, url, headers=self.auth(app_id))


@pytest.fixture(scope="session")
async def world(gateway: Stack, servers: Servers) -> AsyncIterator[World]:
    nc = await nats.connect(servers.nats_url)
    settings = CommonSettings(nats_url=servers.nats_url, prefix=gateway.prefix)
    js = nc.jetstream()
    kv = await index_bucket(js, settings)
    app, idle, other = new_id(), new_id(), new_id()
    executor = ExecutorDouble(nc, settings.names, app)
    await executor.start()
    http = httpx.AsyncClient(base_url=gateway.gateway_url, timeout=10)
    w = World(gateway, nc, js, kv, settings.names, http, executor, app, idle, other, {})
    for app_id in (app, idle, other):
        w.keys[app_id] = await w.add_key(app_id)
    try:
        yield w
    finally:
        await http.aclose()
        await executor.stop()
        await nc.close()
