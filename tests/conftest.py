"""Real servers for the tests: one nats-server and one MongoDB-wire server per test session,
on random ports (or, where a Docker engine runs, the official `nats` and `mongo` images: see
tests/containers.py); each stack of services gets a fresh subject prefix and database name."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.aio.client import Client

from cli.servers import free_port, start_mongo, start_nats
from services.common.ids import new_id
from tests import containers
from tests.stack import Servers, Stack


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    root = tmp_path_factory.mktemp("servers")
    if containers.mode() == "docker":
        with containers.docker_servers() as (nats_url, mongo_url):
            yield Servers(nats_url=nats_url, mongo_url=mongo_url, root=root)
        return
    nats_port, mongo_port = free_port(), free_port()
    nats_proc = start_nats(root / "nats", nats_port)
    mongo_proc = start_mongo(root / "mongo", mongo_port)
    try:
        yield Servers(
            nats_url=f"nats://127.0.0.1:{nats_port}",
            mongo_url=f"mongodb://127.0.0.1:{mongo_port}",
            root=root,
        )
    finally:
        mongo_proc.stop()
        nats_proc.stop()


@pytest.fixture
def fresh_prefix() -> str:
    return "t" + new_id(10)


@pytest.fixture
async def nc(servers: Servers) -> AsyncIterator[Client]:
    client = await nats.connect(servers.nats_url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture(scope="module")
def stack(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """All four services, shared by the tests of one module."""
    with Stack(servers, tmp_path_factory.mktemp("stack")) as s:
        s.start_all()
        yield s
