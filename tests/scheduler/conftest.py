"""A registry and an executor shared by the scheduler tests; each test starts its schedulers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from nats.aio.client import Client

from tests.scheduler.support import Scene, scene
from tests.stack import Servers, Stack


@pytest.fixture(scope="package")
def platform(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(servers, tmp_path_factory.mktemp("scheduling"), WORKLETS_WORKERS="4") as stack:
        stack.start("registry")
        stack.start("executor")
        yield stack


@pytest.fixture
async def world(platform: Stack, nc: Client) -> AsyncIterator[Scene]:
    """A fresh application on the platform; its schedules and schedulers go with the test."""
    async with scene(platform, nc) as s:
        yield s
