"""MongoDB going away: the API answers 503 (never 500), events wait, nothing is lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from cli.servers import Process, free_port, start_mongo
from tests.registry.support import client, eventually, new_app, publish
from tests.registry.test_access import assert_error
from tests.registry.test_runs import Run
from tests.stack import Servers, Stack


class PrivateMongo:
    """An nx-27017 of this test alone, which it can stop and start again on the same data."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"mongodb://127.0.0.1:{self.port}"
        self.proc: Process | None = None

    def start(self) -> None:
        self.proc = start_mongo(self.root, self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


@pytest.fixture
def outage(
    servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, PrivateMongo]]:
    mongo = PrivateMongo(tmp_path_factory.mktemp("mongo"))
    mongo.start()
    own = Servers(nats_url=servers.nats_url, mongo_url=mongo.url, root=servers.root)
    try:
        with Stack(own, tmp_path_factory.mktemp("outage")) as stack:
            stack.start("registry")
            yield stack, mongo
    finally:
        mongo.stop()


async def test_mongodb_outage(outage: tuple[Stack, PrivateMongo], nc: Client) -> None:
    stack, mongo = outage
    async with client(stack, f"Bearer {stack.admin_token}") as admin:
        app_id, _ = await new_app(admin)
        mongo.stop()
        down = await admin.get(f"/v1/applications/{app_id}/worklets")
        assert_error(down, 503, "unavailable")
        run = Run(app_id, "wk1")
        await publish(nc, stack.prefix, *run.all())

        mongo.start()

        async def recorded() -> bool:
            answer = await admin.get(f"/v1/applications/{app_id}/runs/{run.run_id}")
            return bool(answer.status_code == 200 and answer.json()["status"] == "SUCCEEDED")

        await eventually(recorded, "the run to be recorded once MongoDB is back", timeout=60)
        assert (await admin.get(f"/v1/applications/{app_id}/worklets")).status_code == 200
