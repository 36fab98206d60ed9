"""Events that piled up while the registry was down are all recorded once it starts.

How fast it records them is measured by `make bench`, not asserted here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from msgspec import Raw
from nats.aio.client import Client
from pymongo import AsyncMongoClient

from services.common.ids import new_run_id
from shared.schemas import (
    BlockFinished,
    BlockTrace,
    RunQueued,
    RunStarted,
    RunSucceeded,
    encoder,
)
from shared.subjects import EVENT_KIND_HEADER, MSG_ID, REGISTRY_CONSUMER, Names
from tests.registry.support import eventually
from tests.stack import Servers, Stack

RUNS = 3000


@pytest.fixture
def stopped_registry(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A registry that ran once (its consumer exists) and is stopped."""
    with Stack(servers, tmp_path_factory.mktemp("throughput")) as stack:
        stack.start("registry").stop()
        yield stack


def run_events(
    names: Names, app_id: str, worklet_id: str
) -> list[tuple[str, bytes, dict[str, str]]]:
    """One run as the gateway and an executor publish it: (subject, data, headers) x 6."""
    run_id = new_run_id()
    ids: dict[str, Any] = {
        "run_id": run_id,
        "app_id": app_id,
        "worklet_id": worklet_id,
        "version": 1,
    }
    now, data = datetime.now(UTC), Raw(b'{"name": "world"}')
    trace = [BlockTrace(block=b, type="code", input=data, output=data) for b in "abc"]
    events = [
        RunQueued(**ids, trigger="api", at=now, input=data, timeout=300),
        RunStarted(**ids, trigger="api", at=now, attempt=1),
        *(BlockFinished(**ids, trigger="api", at=now, block=t) for t in trace),
        RunSucceeded(**ids, trigger="api", at=now, output=data, latency_ms=2, trace=trace),
    ]
    subject = names.events(app_id, worklet_id, run_id)
    out = []
    for event in events:
        kind = str(type(event).__struct_config__.tag)
        headers = {EVENT_KIND_HEADER: kind}
        if kind == "queued":
            headers[MSG_ID] = f"{run_id}.queued"
        elif kind == "succeeded":
            headers[MSG_ID] = f"{run_id}.end"
        out.append((subject, encoder.encode(event), headers))
    return out


async def test_a_backlog_of_events_is_recorded_when_the_registry_starts(
    stopped_registry: Stack, nc: Client
) -> None:
    stack = stopped_registry
    names = Names(stack.prefix)
    js = nc.jetstream()
    pending = []
    for i in range(RUNS):
        for subject, data, headers in run_events(names, "app1", f"w{i % 5}"):
            pending.append(js.publish(subject, data, headers=headers))
        if len(pending) >= 2000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)

    starting = asyncio.create_task(asyncio.to_thread(stack.start, "registry"))

    async def drained() -> bool:
        info = await js.consumer_info(names.events_stream, REGISTRY_CONSUMER)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await eventually(drained, f"{RUNS} runs to be recorded", timeout=120)
    await starting
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.servers.mongo_url)
    try:
        recorded = await mongo[stack.prefix]["runs"].count_documents({"status": "SUCCEEDED"})
    finally:
        await mongo.close()
    assert recorded == RUNS
