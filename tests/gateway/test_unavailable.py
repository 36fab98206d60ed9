"""Without NATS the gateway answers 503 JSON at once, and it recovers when NATS is back."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest

from cli.servers import Process, free_port, start_nats
from services.common.bus import index_bucket
from services.common.ids import new_id, new_run_id
from shared.schemas import ApiKeyEntry, WorkletHead, encoder
from shared.settings import CommonSettings
from shared.subjects import Names
from tests.stack import Servers, Stack

pytestmark = pytest.mark.integration


class OwnNats:
    """A nats-server of this test's own, so it can be stopped and started again."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc: Process | None = None

    def start(self) -> None:
        self.proc = start_nats(self.root, self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[OwnNats]:
    server = OwnNats(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_503_while_nats_is_down_then_recovery(own_nats: OwnNats, tmp_path: Path) -> None:
    with Stack(Servers(own_nats.url, "mongodb://unused", tmp_path), tmp_path) as stack:
        stack.start("gateway")
        app, worklet, key = new_id(), new_id(), "wk_" + new_id(20)
        nc = await nats.connect(own_nats.url)
        kv = await index_bucket(nc.jetstream(), CommonSettings(prefix=stack.prefix))
        entry = ApiKeyEntry(key_id=new_id(), app_id=app)
        await kv.put(
            Names.key_entry(hashlib.sha256(key.encode()).hexdigest()), encoder.encode(entry)
        )
        head = WorkletHead(app_id=app, worklet_id=worklet, name="w", version=1)
        await kv.put(Names.worklet_head(app, worklet), encoder.encode(head))
        await nc.close()

        headers = {"Authorization": f"Api-Key {key}"}
        invoke = f"/applications/{app}/worklets/{worklet}/invoke"
        body = {"worklet_input": 1, "async": True}
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=10) as http:
            assert (await http.post(invoke, json=body, headers=headers)).status_code == 202

            own_nats.stop()
            async with asyncio.timeout(5):
                while (health := await http.get("/healthz")).status_code == 200:
                    pass
            assert health.status_code == 503
            for r in (
                await http.post(invoke, json=body, headers=headers),
                await http.post(invoke, json={"worklet_input": 1}, headers=headers),
                await http.get(
                    f"/applications/{app}/worklets/{worklet}/{new_run_id()}", headers=headers
                ),
            ):
                assert r.status_code == 503, r.text
                assert r.json()["success"] is False
                assert r.json()["error"]["code"] == "unavailable"

            own_nats.start()
            async with asyncio.timeout(10):
                while (await http.get("/healthz")).status_code != 200:
                    pass
            r = await http.post(invoke, json=body, headers=headers)
            assert r.status_code == 202, r.text
