"""The registry alone against the session's real nats-server and nx-27017."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from nats.aio.client import Client
from nats.js.kv import KeyValue
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared.subjects import Names
from tests.registry.support import client, new_app
from tests.stack import Servers, Stack


@pytest.fixture(scope="module")
def registry(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One registry process with a fresh prefix and database, shared by a module's tests."""
    with Stack(servers, tmp_path_factory.mktemp("registry")) as stack:
        stack.start("registry")
        yield stack


@pytest.fixture
async def admin(registry: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with client(registry, f"Bearer {registry.admin_token}") as http:
        yield http


@pytest.fixture
async def app(admin: httpx.AsyncClient) -> tuple[str, str]:
    return await new_app(admin)


@pytest.fixture
async def kv(registry: Stack, nc: Client) -> KeyValue:
    return await nc.jetstream().key_value(Names(registry.prefix).index_bucket)


@pytest.fixture
async def mongo(registry: Stack) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    mongo_client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(registry.servers.mongo_url)
    try:
        yield mongo_client[registry.prefix]
    finally:
        await mongo_client.close()
