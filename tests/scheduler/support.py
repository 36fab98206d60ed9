"""Driving scheduler processes the way the registry would, and watching what they fire.

Schedules are put straight into the ``{P}_INDEX`` bucket as ``ScheduleEntry`` JSON (the
contract the registry's schedule API writes); worklets are deployed through the registry. A
``Recorder`` reads the application's events from the EVENTS stream itself, so what it sees is
what JetStream kept after deduplication: one queued event per fired slot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import DeliverPolicy
from nats.js.kv import KeyValue

from cli.servers import Process
from services.common.ids import new_id, slot_run_id
from shared.schemas import (
    RunCancelled,
    RunEvent,
    RunQueued,
    RunStarted,
    RunSucceeded,
    ScheduleEntry,
    ScheduleSpec,
    encoder,
    event_decoder,
)
from shared.subjects import Names
from tests.stack import Stack

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # services.common.ids
TERMINAL_KINDS = ("succeeded", "failed", "timed_out", "cancelled")


def now() -> datetime:
    return datetime.now(UTC)


def slot_of(run_id: str) -> datetime:
    """The slot a scheduled run id was made for (its first 10 characters: milliseconds)."""
    ms = 0
    for char in run_id[:10]:
        ms = ms * 32 + _ALPHABET.index(char)
    return datetime.fromtimestamp(ms / 1000, UTC)


def whole_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


async def until(moment: datetime) -> None:
    """Let the clock reach ``moment`` (what a schedule is about, not a synchronisation)."""
    await asyncio.sleep(max(0.0, (moment - now()).total_seconds()))


def is_terminal(event: RunEvent) -> bool:
    return type(event).__struct_config__.tag in TERMINAL_KINDS


def raw(value: Any) -> msgspec.Raw:
    return msgspec.Raw(msgspec.json.encode(value))


@dataclass
class Seen:
    event: RunEvent
    stored: datetime  # when the stream stored it


@dataclass
class Recorder:
    """Every event of one application as the EVENTS stream holds it."""

    seen: list[Seen] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    subscription: Subscription | None = None

    async def start(self, nc: Client, names: Names, app_id: str) -> None:
        self.subscription = await nc.jetstream().subscribe(
            names.events_of_app(app_id),
            cb=self._on_msg,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )

    async def stop(self) -> None:
        if self.subscription is not None:
            with contextlib.suppress(Exception):
                await self.subscription.unsubscribe()

    async def _on_msg(self, msg: Msg) -> None:
        self.seen.append(Seen(event_decoder.decode(msg.data), msg.metadata.timestamp))
        self.changed.set()

    async def until(self, check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        """Wait for ``check()`` to hold as events arrive; fail after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while not check():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}") from None

    async def nothing(self, check: Callable[[], bool], seconds: float) -> None:
        """Fail if ``check()`` becomes true within ``seconds``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while not check():
                    self.changed.clear()
                    await self.changed.wait()
        assert not check()

    # ------------------------------------------------------------------ views

    def events(self, run_id: str) -> list[RunEvent]:
        return [s.event for s in self.seen if s.event.run_id == run_id]

    def queued(self, schedule_id: str) -> list[RunQueued]:
        """The fired slots of a schedule, in the order the stream stored them."""
        return [
            s.event
            for s in self.seen
            if isinstance(s.event, RunQueued) and s.event.schedule_id == schedule_id
        ]

    def skipped(self, schedule_id: str) -> list[RunCancelled]:
        return [
            s.event
            for s in self.seen
            if isinstance(s.event, RunCancelled)
            and s.event.schedule_id == schedule_id
            and s.event.error.type == "OverlapSkipped"
        ]

    def fired_slots(self, schedule_id: str) -> list[datetime]:
        return sorted(slot_of(q.run_id) for q in self.queued(schedule_id))

    def end(self, run_id: str) -> RunEvent | None:
        ends = [e for e in self.events(run_id) if is_terminal(e)]
        assert len(ends) <= 1, ends
        return ends[0] if ends else None

    def interval(self, run_id: str) -> tuple[datetime, datetime]:
        """When a run started and ended."""
        started = [e.at for e in self.events(run_id) if isinstance(e, RunStarted)]
        end = self.end(run_id)
        assert started and end is not None, self.events(run_id)
        return min(started), end.at

    def succeeded(self, run_id: str) -> RunSucceeded:
        end = self.end(run_id)
        assert isinstance(end, RunSucceeded), self.events(run_id)
        return end

    def children(self, parent_run_id: str) -> list[str]:
        return sorted({s.event.run_id for s in self.seen if s.event.parent_run_id == parent_run_id})


def schedule_entry(
    app_id: str,
    worklet_id: str,
    *,
    every: str | None = None,
    cron: str | None = None,
    input: Any = None,
    anchor: datetime | None = None,
    schedule_id: str | None = None,
    **spec: Any,
) -> ScheduleEntry:
    """A schedule as the registry would store it; ``anchor`` defaults to this whole second."""
    moment = now()
    return ScheduleEntry(
        schedule_id=schedule_id or new_id(),
        app_id=app_id,
        worklet_id=worklet_id,
        spec=ScheduleSpec(every=every, cron=cron, input=raw(input), **spec),
        anchor=anchor or whole_second(moment),
        updated_at=moment,
    )


def edited(entry: ScheduleEntry, **spec: Any) -> ScheduleEntry:
    """The same schedule (id and anchor) with some of its spec changed, updated now."""
    if "input" in spec:
        spec["input"] = raw(spec["input"])
    changed = msgspec.structs.replace(entry.spec, **spec)
    return msgspec.structs.replace(entry, spec=changed, updated_at=now())


def admin(stack: Stack) -> httpx.AsyncClient:
    """A client of the registry API with the admin token."""
    return httpx.AsyncClient(
        base_url=stack.registry_url,
        headers={"Authorization": f"Bearer {stack.admin_token}"},
        timeout=30,
    )


class Scene:
    """One test's application on the package's platform: worklets, schedules, schedulers."""

    def __init__(self, stack: Stack, nc: Client, index: KeyValue, app_id: str) -> None:
        self.stack = stack
        self.nc = nc
        self.index = index
        self.app_id = app_id
        self.names = stack.names
        self.recorder = Recorder()
        self.schedulers: list[Process] = []
        self._keys: set[str] = set()

    # ------------------------------------------------------------------ registry

    def http(self) -> httpx.AsyncClient:
        return admin(self.stack)

    async def deploy(self, definition: dict[str, Any]) -> str:
        """Create a worklet through the registry; its id."""
        async with self.http() as http:
            r = await http.post(f"/v1/applications/{self.app_id}/worklets", json=definition)
        assert r.status_code == 201, r.text
        worklet_id: str = r.json()["id"]
        return worklet_id

    async def code(self, name: str, source: str, **settings: Any) -> str:
        block = {"id": "main", "type": "code", "source": source}
        definition: dict[str, Any] = {"name": name, "blocks": [block]}
        if settings:
            definition["settings"] = settings
        return await self.deploy(definition)

    async def run_record(self, run_id: str) -> dict[str, Any] | None:
        async with self.http() as http:
            r = await http.get(f"/v1/applications/{self.app_id}/runs/{run_id}")
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.text
        record: dict[str, Any] = r.json()
        return record

    async def records(
        self, run_ids: list[str], done: Callable[[dict[str, Any]], bool]
    ) -> list[dict[str, Any]]:
        """The registry's records of ``run_ids`` once ``done`` holds for each (15 s at most)."""
        async with asyncio.timeout(15):
            while True:
                found = [await self.run_record(run_id) for run_id in run_ids]
                if all(r is not None and done(r) for r in found):
                    return [r for r in found if r is not None]
                await asyncio.sleep(0.2)

    # ------------------------------------------------------------------ schedules

    async def put(self, entry: ScheduleEntry) -> ScheduleEntry:
        key = Names.schedule(entry.app_id, entry.worklet_id)
        self._keys.add(key)
        await self.index.put(key, encoder.encode(entry))
        return entry

    async def delete(self, entry: ScheduleEntry) -> None:
        await self.index.delete(Names.schedule(entry.app_id, entry.worklet_id))

    # ------------------------------------------------------------------ schedulers

    async def scheduler(self, name: str | None = None, **env: str) -> Process:
        """Start a scheduler process; returns once its health file exists."""
        name = name or f"scheduler-{new_id(6)}"
        proc = await asyncio.to_thread(self.stack.start, "scheduler", name, **env)
        self.schedulers.append(proc)
        return proc

    async def close(self) -> None:
        for key in self._keys:
            with contextlib.suppress(Exception):
                await self.index.delete(key)
        for proc in self.schedulers:
            await asyncio.to_thread(proc.stop)
        await self.recorder.stop()


@contextlib.asynccontextmanager
async def scene(stack: Stack, nc: Client) -> AsyncIterator[Scene]:
    index = await nc.jetstream().key_value(stack.names.index_bucket)
    async with admin(stack) as http:
        created = await http.post("/v1/applications", json={"name": f"sched-{new_id(6)}"})
        assert created.status_code == 201, created.text
    s = Scene(stack, nc, index, created.json()["id"])
    await s.recorder.start(nc, stack.names, s.app_id)
    try:
        yield s
    finally:
        await s.close()


def expected_slots(first: datetime, last: datetime, every: timedelta) -> list[datetime]:
    slots, moment = [], first
    while moment <= last:
        slots.append(moment)
        moment += every
    return slots


def run_ids(schedule_id: str, slots: list[datetime]) -> list[str]:
    return [slot_run_id(schedule_id, slot) for slot in slots]
