"""Clients for the integration tests: invoke through the gateway, read the EVENTS stream."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, DeliverPolicy

from shared.schemas import RunEvent, event_decoder
from tests.stack import Stack

TERMINAL_KINDS = ("succeeded", "failed", "timed_out", "cancelled")


class Gateway:
    """An application's view of the gateway."""

    def __init__(self, stack: Stack, app_id: str, key: str) -> None:
        self.app_id = app_id
        self.client = httpx.AsyncClient(
            base_url=stack.gateway_url,
            headers={"Authorization": f"Api-Key {key}"},
            timeout=60,
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def invoke(self, worklet_id: str, worklet_input: Any, **options: Any) -> httpx.Response:
        return await self.client.post(
            f"/applications/{self.app_id}/worklets/{worklet_id}/invoke",
            json={"worklet_input": worklet_input, **options},
        )

    async def start(self, worklet_id: str, worklet_input: Any) -> str:
        """A background run; its run id."""
        r = await self.invoke(worklet_id, worklet_input, **{"async": True})
        assert r.status_code == 202, r.text
        run_id: str = r.json()["scheduled_worklet_run_id"]
        return run_id

    async def poll(self, worklet_id: str, run_id: str) -> httpx.Response:
        return await self.client.get(f"/applications/{self.app_id}/worklets/{worklet_id}/{run_id}")

    async def wait(self, worklet_id: str, run_id: str, timeout: float = 60) -> dict[str, Any]:
        """Poll until the run ends; the final poll answer."""
        async with asyncio.timeout(timeout):
            while True:
                r = await self.poll(worklet_id, run_id)
                assert r.status_code == 200, f"{run_id}: {r.status_code} {r.text}"
                body: dict[str, Any] = r.json()
                if body["status"] not in ("QUEUED", "RUNNING"):
                    return body
                await asyncio.sleep(0.05)  # polling interval of a client, not synchronisation


async def read_events(nc: Client, stack: Stack, app_id: str) -> list[RunEvent]:
    """Every event of an application still in the EVENTS stream, in stream order."""
    js = nc.jetstream()
    names = stack.names
    info = await js.stream_info(names.events_stream)
    last = info.state.last_seq
    sub = await js.pull_subscribe(
        names.events_of_app(app_id),
        stream=names.events_stream,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=30),
    )
    events: list[RunEvent] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(500, timeout=1)
            except TimeoutError:
                break
            for msg in msgs:
                await msg.ack()
                events.append(event_decoder.decode(msg.data))
            if msgs and msgs[-1].metadata.sequence.stream >= last:
                break
    finally:
        await sub.unsubscribe()
    return events


def kind(event: RunEvent) -> str:
    return str(type(event).__struct_config__.tag)


def count_kinds(events: list[RunEvent], kinds: tuple[str, ...]) -> Counter[str]:
    """How many events of these kinds each run has."""
    return Counter(e.run_id for e in events if kind(e) in kinds)
