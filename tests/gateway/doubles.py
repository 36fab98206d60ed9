"""Test doubles of the gateway's neighbours, speaking real NATS exactly as docs/internals.md says.

``ExecutorDouble`` pulls run requests from the RUNS stream with a real durable consumer and
publishes the events an executor would; ``RegistryDouble`` answers ``runs.get`` look-ups.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from shared.schemas import (
    BlockTrace,
    RunError,
    RunFailed,
    RunLookup,
    RunRequest,
    RunStarted,
    RunState,
    RunSucceeded,
    RunTimedOut,
    TerminalEvent,
    encoder,
    run_request_decoder,
)
from shared.subjects import ERROR_HEADER, EXECUTORS_CONSUMER, MSG_ID, REGISTRY_QUEUE, Names

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def event_fields(request: RunRequest) -> dict[str, Any]:
    return {
        "run_id": request.run_id,
        "app_id": request.app_id,
        "worklet_id": request.worklet_id,
        "version": request.version,
        "trigger": request.trigger,
        "at": _now(),
    }


def outcome(request: RunRequest) -> TerminalEvent:
    """What the double does with an input: ``{"raise": {...}}`` fails, ``{"time_out": true}``
    times out, anything else succeeds with ``{"echo": input}``."""
    data = json.loads(bytes(request.input))
    fields = event_fields(request)
    if isinstance(data, dict) and "raise" in data:
        error = RunError(**data["raise"], traceback="Traceback (most recent call last): ...")
        return RunFailed(**fields, error=error, latency_ms=2)
    if isinstance(data, dict) and data.get("time_out"):
        error = RunError(type="Timeout", message=f"the run took longer than {request.timeout:g} s")
        return RunTimedOut(**fields, error=error, latency_ms=int(request.timeout * 1000))
    output = msgspec.Raw(encoder.encode({"echo": data}))
    trace = [
        BlockTrace(
            block="main",
            type="code",
            input=request.input,
            output=output,
            logs=["hello from main"],
            duration_ms=0.5,
            started_at=_now(),
        )
    ]
    return RunSucceeded(**fields, output=output, latency_ms=1, trace=trace if request.trace else [])


class ExecutorDouble:
    """Runs the requests of one application's worklets, ``{p}.runs.{app}.*``, as the executor
    would: RunStarted, the terminal event with ``Nats-Msg-Id: {run}.end`` (ack awaited), the
    same event to ``reply_to``, then the ack of the run message."""

    def __init__(self, nc: Client, names: Names, app_id: str) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._names = names
        self._app_id = app_id
        self.requests: dict[str, RunRequest] = {}
        self._task: asyncio.Task[None] | None = None
        self._runs: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._sub = await self._js.pull_subscribe(
            self._names.runs(self._app_id, "*"),
            durable=EXECUTORS_CONSUMER,
            stream=self._names.runs_stream,
        )
        self._task = asyncio.create_task(self._pull())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, *self._runs, return_exceptions=True)

    async def _pull(self) -> None:
        while True:
            try:
                msgs = await self._sub.fetch(1, timeout=5)
            except nats.errors.TimeoutError:
                continue
            for msg in msgs:
                task = asyncio.create_task(self._run(msg))
                self._runs.add(task)
                task.add_done_callback(self._runs.discard)

    async def _run(self, msg: Msg) -> None:
        try:
            request = run_request_decoder.decode(msg.data)
        except msgspec.DecodeError:
            await msg.term()
            raise
        self.requests[request.run_id] = request
        events = self._names.events(request.app_id, request.worklet_id, request.run_id)
        started = RunStarted(**event_fields(request), attempt=1, executor="double")
        await self._nc.publish(events, encoder.encode(started))
        end = outcome(request)
        await self._js.publish(
            events, encoder.encode(end), headers={MSG_ID: f"{request.run_id}.end"}
        )
        if request.reply_to:
            await self._nc.publish(request.reply_to, encoder.encode(end))
        await msg.ack()


class RegistryDouble:
    """Answers ``{p}.registry.runs.get`` from a dict of run states (queue group ``registry``)."""

    def __init__(self, nc: Client, names: Names) -> None:
        self._nc = nc
        self._names = names
        self.states: dict[str, RunState] = {}
        self.lookups: list[RunLookup] = []
        self._sub: Subscription | None = None

    async def __aenter__(self) -> RegistryDouble:
        self._sub = await self._nc.subscribe(
            self._names.registry_runs_get, queue=REGISTRY_QUEUE, cb=self._answer
        )
        await self._nc.flush()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            await self._nc.flush()

    async def _answer(self, msg: Msg) -> None:
        lookup = msgspec.json.decode(msg.data, type=RunLookup)
        self.lookups.append(lookup)
        state = self.states.get(lookup.run_id)
        if state is None or (state.app_id, state.worklet_id) != (lookup.app_id, lookup.worklet_id):
            await self._nc.publish(msg.reply, b"", headers={ERROR_HEADER: "not_found"})
        else:
            await msg.respond(encoder.encode(state))
