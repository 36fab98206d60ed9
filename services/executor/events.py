"""Publishing a run's events on ``{p}.events.{app}.{worklet}.{run}``.

Progress events (started, block finished, a child's queued) are core publishes onto the stream
subject, without ack wait. A quick run's progress events are held and go out in one batch with
its end (one write, one wake-up of the server, instead of one per block); once a run is older
than ``PROGRESS_DELAY`` they are released and the later ones go out as they happen, so pollers
of a long run see it running. The terminal event carries ``Nats-Msg-Id: {run}.end``, so a
redelivered run's repeated end is dropped, and its JetStream ack is awaited (``Ending.wait``).

Everything is written through ``Wire``: commands built once, several per write, never a
suspension between a run's events, so they reach the stream in the order they were made.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import nats.errors

from services.common.wire import Wire, header_block, hpub, within
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

_STARTED = header_block((EVENT_KIND_HEADER, "started"))
_BLOCK_FINISHED = header_block((EVENT_KIND_HEADER, "block_finished"))
_KIND_HEADERS: dict[str, bytes] = {}  # the reply's header, by terminal kind


def now() -> datetime:
    return datetime.now(UTC)


def kind(event: TerminalEvent) -> str:
    """The event's tag (``succeeded``, ``failed``...), also sent as the Worklets-Event header."""
    return str(type(event).__struct_config__.tag)


def _kind_header(event_kind: str) -> bytes:
    header = _KIND_HEADERS.get(event_kind)
    if header is None:
        header = _KIND_HEADERS[event_kind] = header_block((EVENT_KIND_HEADER, event_kind))
    return header


def _fields(request: RunRequest) -> dict[str, Any]:
    return {
        "run_id": request.run_id,
        "app_id": request.app_id,
        "worklet_id": request.worklet_id,
        "version": request.version,
        "trigger": request.trigger,
        "parent_run_id": request.parent_run_id,
        "schedule_id": request.schedule_id,
    }


def meta(request: RunRequest) -> dict[str, Any]:
    """The fields every event of this run carries."""
    fields = _fields(request)
    fields["at"] = now()
    return fields


class Events:
    """What every run's events share: the wire and settings. ``of`` makes a RunEvents."""

    def __init__(self, wire: Wire, settings: ExecutorSettings, executor_id: str) -> None:
        self.wire = wire
        self.names = settings.names
        self.block_events = settings.block_events
        self.executor_id = executor_id

    def of(self, request: RunRequest) -> RunEvents:
        return RunEvents(self, request)

    def reply(self, request: RunRequest, event_kind: str, payload: bytes) -> None:
        """Hand a terminal event to the synchronous caller waiting on ``reply_to``."""
        if request.reply_to:
            self.wire.send(hpub(request.reply_to.encode(), _kind_header(event_kind), payload))


class Ending:
    """A terminal event on its way into the stream; ``wait`` until it is stored."""

    __slots__ = ("_command", "_future", "_reply", "_run_id", "_wire", "payload")

    def __init__(self, wire: Wire, run_id: str, subject: bytes, header: bytes, payload: bytes):
        self._wire = wire
        self._run_id = run_id
        self.payload = payload
        self._command = (subject, header, payload)
        self._reply, self._future = wire.expect_ack()

    def command(self) -> bytes:
        subject, header, payload = self._command
        return hpub(subject, header, payload, self._reply)

    async def wait(self) -> None:
        """Until the stream has the event; retried, then the last error is raised."""
        for attempt in range(1, TERMINAL_ATTEMPTS + 1):
            try:
                await within(TERMINAL_TIMEOUT, self._future)
                return
            except (TimeoutError, nats.errors.NoRespondersError) as err:
                self._wire.forget(self._reply, self._future)
                if attempt == TERMINAL_ATTEMPTS:
                    if isinstance(err, TimeoutError):
                        raise nats.errors.TimeoutError from None
                    raise
                log.warning("run %s: storing its end failed (%r), retrying", self._run_id, err)
                await asyncio.sleep(0.25 * 2**attempt)
                self._reply, self._future = self._wire.expect_ack()
                self._wire.send(self.command())
            except BaseException:
                self.abandon()
                raise
        raise AssertionError("unreachable")

    def abandon(self) -> None:
        """Stop waiting for the ack."""
        self._wire.forget(self._reply, self._future)


class RunEvents:
    """The events of one run, in order."""

    __slots__ = ("_fields", "_held", "_request", "_shared", "_subject", "_timer")

    def __init__(self, shared: Events, request: RunRequest) -> None:
        self._shared = shared
        self._request = request
        self._fields = _fields(request)
        subject = shared.names.events(request.app_id, request.worklet_id, request.run_id)
        self._subject = subject.encode()
        self._held: list[bytes] | None = []  # None: released
        self._timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            PROGRESS_DELAY, self._release
        )

    def queued(self) -> None:
        """A child run's RunQueued (the gateway publishes it for the runs it queues)."""
        r = self._request
        event = RunQueued(
            **self._fields, at=now(), input=r.input, background=r.background, timeout=r.timeout
        )
        header = header_block((MSG_ID, f"{r.run_id}.queued"), (EVENT_KIND_HEADER, "queued"))
        self._progress(encoder.encode(event), header)

    def started(self, attempt: int) -> None:
        event = RunStarted(
            **self._fields, at=now(), attempt=attempt, executor=self._shared.executor_id
        )
        self._progress(encoder.encode(event), _STARTED)

    def block(self, trace: BlockTrace) -> None:
        if self._shared.block_events:
            event = BlockFinished(**self._fields, at=now(), block=trace)
            self._progress(encoder.encode(event), _BLOCK_FINISHED)

    def _progress(self, payload: bytes, header: bytes) -> None:
        command = hpub(self._subject, header, payload)
        if self._held is not None:
            self._held.append(command)
            return
        try:
            self._shared.wire.send(command)
        except nats.errors.Error as err:  # progress only: the end is what matters
            log.warning("run %s: progress event lost: %r", self._request.run_id, err)

    def _release(self) -> None:
        self._timer = None
        held, self._held = self._held, None
        if held:
            try:
                self._shared.wire.send(*held)
            except nats.errors.Error as err:  # progress only: the end is what matters
                log.warning("run %s: progress events lost: %r", self._request.run_id, err)

    def close(self) -> None:
        """The run was cut short: nothing more is sent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def carry(self, commands: list[bytes]) -> None:
        """A child run's events and end: held with this run's events, or sent now if released."""
        if self._held is not None:
            self._held.extend(commands)
        else:
            self._shared.wire.send(*commands)

    def end(self, event: TerminalEvent, parent: RunEvents | None = None) -> Ending:
        """Send what is held and the terminal event, in one write (a child run's go with its
        parent's, ``carry``); ``wait`` on the result."""
        self.close()
        request = self._request
        wire = self._shared.wire
        payload = encoder.encode(event)
        if len(payload) > wire.max_payload and event.trace:
            log.warning(
                "run %s: terminal event of %d bytes is too large, dropping its trace",
                request.run_id,
                len(payload),
            )
            event.trace = []
            payload = encoder.encode(event)
        wire.check_size(payload)
        header = header_block((MSG_ID, f"{request.run_id}.end"), (EVENT_KIND_HEADER, kind(event)))
        ending = Ending(wire, request.run_id, self._subject, header, payload)
        commands, self._held = self._held or [], None
        commands.append(ending.command())
        try:
            if parent is not None:
                parent.carry(commands)
            else:
                wire.send(*commands)
        except BaseException:
            ending.abandon()
            raise
        return ending
