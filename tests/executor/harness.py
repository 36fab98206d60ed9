"""Driving a real executor process over NATS the way the gateway and registry would.

Worklets are put straight into the key-value read model (as the registry would), run requests
are published on RUNS (as the gateway would), and every event on ``{p}.events.>`` is kept.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.kv import KeyValue

from services.common.ids import new_id, new_run_id
from services.common.sealing import Sealer
from shared.schemas import (
    Definition,
    RunEvent,
    RunRequest,
    RunStarted,
    SecretEntry,
    TerminalEvent,
    WorkletHead,
    WorkletSettings,
    WorkletVersion,
    encoder,
    event_decoder,
)
from shared.subjects import MSG_ID, Names

TERMINAL = ("succeeded", "failed", "timed_out", "cancelled")
terminal_decoder = msgspec.json.Decoder(TerminalEvent)


def is_terminal(event: RunEvent) -> bool:
    return type(event).__struct_config__.tag in TERMINAL


@dataclass(frozen=True)
class Worklet:
    app_id: str
    worklet_id: str
    version: int


@dataclass
class EventLog:
    """Every event seen on ``{p}.events.>``, by run id."""

    runs: dict[str, list[RunEvent]] = field(default_factory=lambda: defaultdict(list))
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_msg(self, msg: Msg) -> None:
        event = event_decoder.decode(msg.data)
        self.runs[event.run_id].append(event)
        self.changed.set()

    async def wait(
        self, run_id: str, until: Callable[[list[RunEvent]], bool], timeout: float = 15
    ) -> list[RunEvent]:
        async with asyncio.timeout(timeout):
            while not until(self.runs[run_id]):
                self.changed.clear()
                await self.changed.wait()
        return self.runs[run_id]

    async def terminal(self, run_id: str, timeout: float = 15) -> TerminalEvent:
        events = await self.wait(run_id, lambda es: any(is_terminal(e) for e in es), timeout)
        ends = [e for e in events if is_terminal(e)]
        assert len(ends) == 1, ends
        end = ends[0]
        assert not isinstance(end, RunStarted)
        return end  # type: ignore[return-value]

    def children(self, parent_run_id: str) -> list[str]:
        return [
            run_id
            for run_id, events in self.runs.items()
            if any(e.parent_run_id == parent_run_id for e in events)
        ]


class Harness:
    def __init__(
        self, nc: Client, names: Names, kv: KeyValue, log: EventLog, sealer: Sealer
    ) -> None:
        self.nc = nc
        self.sealer = sealer  # the executor's key, as the registry seals with it
        self.js: JetStreamContext = nc.jetstream()
        self.names = names
        self.kv = kv
        self.events = log
        self.published = 0  # run requests put on RUNS by this harness
        self._subscription: Subscription | None = None

    async def deploy(
        self,
        blocks: list[dict[str, Any]],
        *,
        app_id: str | None = None,
        worklet_id: str | None = None,
        entry: str | None = None,
        timeout: float | None = None,
    ) -> Worklet:
        """Put a worklet (head and version 1) into the read model."""
        app_id = app_id or new_id()
        worklet_id = worklet_id or new_id()
        definition = msgspec.convert(
            {"name": f"w-{worklet_id}", "blocks": blocks, "entry": entry}, Definition
        )
        settings = WorkletSettings(timeout=timeout)
        version = WorkletVersion(
            app_id=app_id,
            worklet_id=worklet_id,
            version=1,
            definition=definition,
            created_at=datetime.now(UTC),
        )
        head = WorkletHead(
            app_id=app_id, worklet_id=worklet_id, name=definition.name, version=1, settings=settings
        )
        await self.kv.put(Names.worklet_version(app_id, worklet_id, 1), encoder.encode(version))
        await self.kv.put(Names.worklet_head(app_id, worklet_id), encoder.encode(head))
        return Worklet(app_id, worklet_id, 1)

    async def code(self, source: str, **kw: Any) -> Worklet:
        """A one-block worklet running ``source``."""
        return await self.deploy([{"id": "main", "type": "code", "source": source}], **kw)

    async def put_secret(
        self, app_id: str, name: str, value: str, sealer: Sealer | None = None
    ) -> None:
        """As the registry stores it: sealed (by default under the executor's key)."""
        sealed = (sealer or self.sealer).seal(app_id, name, value)
        entry = SecretEntry(app_id=app_id, name=name, sealed=sealed)
        await self.kv.put(Names.secret(app_id, name), encoder.encode(entry))

    async def submit(
        self,
        worklet: Worklet,
        data: Any = None,
        *,
        timeout: float = 10,
        reply_to: str | None = None,
        version: int | None = None,
    ) -> str:
        """Publish a run request as the gateway does; returns the run id."""
        run_id = new_run_id()
        request = RunRequest(
            run_id=run_id,
            app_id=worklet.app_id,
            worklet_id=worklet.worklet_id,
            version=version or worklet.version,
            trigger="api",
            input=msgspec.Raw(msgspec.json.encode(data)),
            timeout=timeout,
            queued_at=datetime.now(UTC),
            reply_to=reply_to,
        )
        subject = self.names.runs(worklet.app_id, worklet.worklet_id)
        await self.js.publish(subject, encoder.encode(request), headers={MSG_ID: run_id})
        self.published += 1
        return run_id

    async def invoke(
        self, worklet: Worklet, data: Any = None, *, timeout: float = 10
    ) -> TerminalEvent:
        """A synchronous invoke: the terminal event as it arrives on ``reply_to``."""
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox, max_msgs=1)
        try:
            await self.submit(worklet, data, timeout=timeout, reply_to=inbox)
            msg = await sub.next_msg(timeout=timeout + 10)
        finally:
            await sub.unsubscribe()
        return terminal_decoder.decode(msg.data)

    async def stored_events(self, worklet: Worklet, run_id: str) -> list[RunEvent]:
        """The run's events as the EVENTS stream holds them."""
        subject = self.names.events(worklet.app_id, worklet.worklet_id, run_id)
        sub = await self.js.subscribe(
            subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        events: list[RunEvent] = []
        try:
            while True:
                msg = await sub.next_msg(timeout=5)
                events.append(event_decoder.decode(msg.data))
                if msg.metadata.num_pending == 0:
                    return events
        finally:
            await sub.unsubscribe()


def output(event: TerminalEvent) -> Any:
    assert event.__struct_config__.tag == "succeeded", event
    return msgspec.json.decode(event.output)  # type: ignore[union-attr]
