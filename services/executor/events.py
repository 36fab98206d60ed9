"""Publishing a run's events on ``{p}.events.{app}.{worklet}.{run}``.

Progress events (started, block finished, a child's queued) are core publishes onto the stream
subject, without ack wait. A quick run's progress events are held and go out in one batch just
before its end (one write, one wake-up of the server, instead of one per block); once a run is
older than ``PROGRESS_DELAY`` they are released and the later ones go out as they happen, so
pollers of a long run see it running. The terminal event carries ``Nats-Msg-Id: {run}.end``,
so a redelivered run's repeated end is dropped, and its JetStream ack is awaited.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import nats.errors
from nats.aio.client import Client

from shared.schemas import (
    BlockFinished,
    BlockTrace,
    RunQueued,
    RunRequest,
    RunStarted,
    TerminalEvent,
    encoder,
)
from shared.settings import ExecutorSettings
from shared.subjects import EVENT_KIND_HEADER, MSG_ID

log = logging.getLogger(__name__)

PROGRESS_DELAY = 0.05  # seconds a run's progress events may wait to go out with its end
TERMINAL_ATTEMPTS = 4  # tries to store a terminal event before the run message is nak'ed
TERMINAL_TIMEOUT = 5.0  # seconds per try

Headers = dict[str, str]


def now() -> datetime:
    return datetime.now(UTC)


def kind(event: TerminalEvent) -> str:
    """The event's tag (``succeeded``, ``failed``...), also sent as the Worklets-Event header."""
    return str(type(event).__struct_config__.tag)


def meta(request: RunRequest) -> dict[str, Any]:
    """The fields every event of this run carries."""
    return {
        "run_id": request.run_id,
        "app_id": request.app_id,
        "worklet_id": request.worklet_id,
        "version": request.version,
        "trigger": request.trigger,
        "at": now(),
        "parent_run_id": request.parent_run_id,
        "schedule_id": request.schedule_id,
    }


class Events:
    """What every run's events share: the connection and settings. ``of`` makes a RunEvents."""

    def __init__(self, nc: Client, settings: ExecutorSettings, executor_id: str) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.names = settings.names
        self.block_events = settings.block_events
        self.executor_id = executor_id

    def of(self, request: RunRequest) -> RunEvents:
        return RunEvents(self, request)

    async def reply(self, request: RunRequest, event_kind: str, payload: bytes) -> None:
        """Hand a terminal event to the synchronous caller waiting on ``reply_to``."""
        if request.reply_to:
            await self.nc.publish(
                request.reply_to, payload, headers={EVENT_KIND_HEADER: event_kind}
            )


class RunEvents:
    """The events of one run, in order."""

    def __init__(self, shared: Events, request: RunRequest) -> None:
        self._shared = shared
        self._request = request
        self._subject = shared.names.events(request.app_id, request.worklet_id, request.run_id)
        self._held: list[tuple[bytes, Headers]] | None = []  # None: released
        self._lock = asyncio.Lock()
        self._release_task: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = loop.call_later(
            PROGRESS_DELAY, self._release_soon
        )

    async def queued(self) -> None:
        """A child run's RunQueued (the gateway publishes it for the runs it queues)."""
        r = self._request
        event = RunQueued(**meta(r), input=r.input, background=r.background, timeout=r.timeout)
        await self._progress(
            encoder.encode(event), {MSG_ID: f"{r.run_id}.queued", EVENT_KIND_HEADER: "queued"}
        )

    async def started(self, attempt: int) -> None:
        event = RunStarted(
            **meta(self._request), attempt=attempt, executor=self._shared.executor_id
        )
        await self._progress(encoder.encode(event), {EVENT_KIND_HEADER: "started"})

    async def block(self, trace: BlockTrace) -> None:
        if self._shared.block_events:
            event = BlockFinished(**meta(self._request), block=trace)
            await self._progress(encoder.encode(event), {EVENT_KIND_HEADER: "block_finished"})

    async def _progress(self, payload: bytes, headers: Headers) -> None:
        if self._held is not None:
            self._held.append((payload, headers))
            return
        async with self._lock:
            await self._shared.nc.publish(self._subject, payload, headers=headers)

    def _release_soon(self) -> None:
        self._timer = None
        self._release_task = asyncio.create_task(self._release(), name=f"events {self._subject}")

    async def _release(self) -> None:
        async with self._lock:
            held, self._held = self._held or [], None
            try:
                for payload, headers in held:
                    await self._shared.nc.publish(self._subject, payload, headers=headers)
            except nats.errors.Error as err:  # progress only: the end is what matters
                log.warning("run %s: progress events lost: %s", self._request.run_id, err)

    def close(self) -> None:
        """The run was cut short: nothing more is sent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def end(self, event: TerminalEvent) -> bytes:
        """Send what is held, then store the terminal event (awaiting the ack); its bytes."""
        self.close()
        await self._release()
        request = self._request
        headers = {MSG_ID: f"{request.run_id}.end", EVENT_KIND_HEADER: kind(event)}
        payload = encoder.encode(event)
        if len(payload) > self._shared.nc.max_payload and event.trace:
            log.warning(
                "run %s: terminal event of %d bytes is too large, dropping its trace",
                request.run_id,
                len(payload),
            )
            event.trace = []
            payload = encoder.encode(event)
        for attempt in range(1, TERMINAL_ATTEMPTS + 1):
            try:
                await self._shared.js.publish(
                    self._subject, payload, timeout=TERMINAL_TIMEOUT, headers=headers
                )
                return payload
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as err:
                if attempt == TERMINAL_ATTEMPTS:
                    raise
                log.warning("run %s: storing its end failed (%s), retrying", request.run_id, err)
                await asyncio.sleep(0.25 * 2**attempt)
        raise AssertionError("unreachable")
