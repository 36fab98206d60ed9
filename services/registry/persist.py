"""Recording runs: events from the EVENTS stream folded into one MongoDB document per run.

A durable pull consumer (``registry``) delivers events; each is folded into what is known of
its run: identity (app, worklet, version, trigger...), *facts* (input and ``queued_at`` from
``queued``; earliest ``started_at`` and highest ``attempts`` from ``started``) and the highest
*status* seen, with its outcome (output, error, trace, latency, ``finished_at``).

**Holding.** Writes, not events, are what cost (nx-27017 spends about as much CPU on a write
whatever is in it, and more on an update than on an insert), so a run's events wait in memory,
unacknowledged, until its terminal event arrives or ``HOLD`` seconds after the first of them:
a quick run's queued, started and terminal events become one insert instead of two or three
writes. Pollers do not wait for this (the gateway answers them from the EVENTS stream); only
the runs API sees a queued or running run that much later. The hold is bounded: at most half
the consumer's ``max_ack_pending`` events wait at once (beyond that the oldest runs are written
early; the other half is for the batches being fetched and written), and ``HOLD`` is at most a
quarter of its ``ack_wait``. A fetch also lingers ``LINGER`` seconds after its first event
(unless the previous fetch was full: a backlog) so that one bulk write and one burst of acks
serve many runs. ``block_finished`` events need no write (the terminal event carries the
trace): they are recognised by their ``Worklets-Event`` header and acked at once, undecoded.
A terminal event's trace is stored as the JSON text it arrived as, never decoded.

**Writing.** Ranks keep a record from moving backwards: QUEUED 1 < RUNNING 2 < terminal 3.
A run whose ``queued`` event is among its held events is new as far as this consumer knows: its
whole record is inserted (an insert costs nx-27017 much less than an upsert, which first
queries). Any other run gets one upsert filtered on ``{_id, rank: {$lt: new rank}}`` that sets
identity on insert and facts, status and outcome. Both fail with a duplicate key when the
record already exists (the upsert: when it is already at that rank or beyond, an out-of-order
or repeated event; the insert: a redelivery); only those runs get a second unordered bulk
write: their facts as a plain update, and the status as an update filtered on the rank. So a
record never moves backwards, a repeated terminal event changes nothing, and facts arriving
late are still recorded.

A run's events are acked after its record is written. An undecodable event is logged and
terminated; a MongoDB failure naks the batch with a delay, so it is redelivered and written
again (every write is idempotent); a run whose record MongoDB itself refuses is retried the
same way, and given up (logged, terminated) after ``GIVE_UP_AFTER`` deliveries so it cannot
block the others. Nothing is acked before it is written, so a crash loses nothing: the server
redelivers what was held or being written.

Two stages keep both processes busy: while MongoDB writes one batch, the next events are
fetched (``pull.py``), decoded and held. Stopping writes what was fetched, held runs included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgspec
from msgspec import Raw
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, PyMongoError

from services.registry.pull import Puller
from services.registry.store import Document, Store, stamp
from shared.schemas import (
    EVENT_STATUS,
    RANK,
    BlockFinished,
    RunCancelled,
    RunFailed,
    RunQueued,
    RunStarted,
    RunSucceeded,
    RunTimedOut,
    Status,
    encoder,
)
from shared.settings import RegistrySettings
from shared.subjects import EVENT_KIND_HEADER, REGISTRY_CONSUMER

log = logging.getLogger(__name__)

FETCH_WAIT = 1.0  # seconds a fetch waits for the first event when nothing is held
LINGER = 0.05  # seconds a fetch waits, after its first event, for more
HOLD = 5.0  # seconds a run's events may wait in memory for its terminal event
RETRY_DELAY = 2.0  # seconds before a batch that failed to write is redelivered
ACK_WAIT = 30.0  # seconds the server waits for an event's ack before redelivering
STOP_WAIT = 30.0  # seconds allowed to write what was fetched when stopping
GIVE_UP_AFTER = 10  # deliveries of an event whose record MongoDB keeps refusing
DUPLICATE_KEY = 11000
TERMINAL_RANK = 3
MIN_WAIT = 0.01  # seconds: the shortest long poll (an ``expires`` of 0 would never expire)

Write = InsertOne[Document] | UpdateOne


# The terminal events as stored: their trace is kept as the JSON it arrived as (the executor
# encoded it with ``shared.schemas.encoder``), not decoded into BlockTraces and encoded again.
# Everything else, and any field added later, is inherited from ``shared.schemas``.
EMPTY_TRACE = Raw(b"[]")


class Succeeded(RunSucceeded, tag="succeeded"):
    trace: Raw = EMPTY_TRACE  # type: ignore[assignment]


class Failed(RunFailed, tag="failed"):
    trace: Raw = EMPTY_TRACE  # type: ignore[assignment]


class TimedOut(RunTimedOut, tag="timed_out"):
    trace: Raw = EMPTY_TRACE  # type: ignore[assignment]


class Cancelled(RunCancelled, tag="cancelled"):
    trace: Raw = EMPTY_TRACE  # type: ignore[assignment]


Ended = Succeeded | Failed | TimedOut | Cancelled
Event = RunQueued | RunStarted | BlockFinished | Ended
event_decoder = msgspec.json.Decoder(Event)
STATUS: dict[type[Event], Status] = {
    RunQueued: EVENT_STATUS[RunQueued],
    RunStarted: EVENT_STATUS[RunStarted],
    BlockFinished: EVENT_STATUS[BlockFinished],
    Succeeded: EVENT_STATUS[RunSucceeded],
    Failed: EVENT_STATUS[RunFailed],
    TimedOut: EVENT_STATUS[RunTimedOut],
    Cancelled: EVENT_STATUS[RunCancelled],
}


@dataclass
class RunFold:
    """What the held events say about one run."""

    identity: Document
    facts: Document = field(default_factory=dict)
    started_at: str | None = None
    attempts: int | None = None
    rank: int = 0  # 0: nothing to write
    outcome: Document = field(default_factory=dict)

    @classmethod
    def of(cls, event: Event) -> RunFold:
        identity: Document = {
            "run_id": event.run_id,
            "app_id": event.app_id,
            "worklet_id": event.worklet_id,
            "version": event.version,
            "trigger": event.trigger,
        }
        if event.parent_run_id is not None:
            identity["parent_run_id"] = event.parent_run_id
        if event.schedule_id is not None:
            identity["schedule_id"] = event.schedule_id
        return cls(identity=identity)

    @property
    def new(self) -> bool:
        """Whether the run's queued event is here: then its record is normally not written
        yet (a redelivery after a crash is the exception, which the insert detects)."""
        return "queued_at" in self.facts

    def add(self, event: Event) -> None:
        outcome: Document = {}
        match event:
            case BlockFinished():
                return
            case RunQueued():
                self.facts["input"] = bytes(event.input).decode()
                self.facts["queued_at"] = stamp(event.at)
                self.facts["timeout"] = event.timeout
            case RunStarted():
                at = stamp(event.at)
                self.started_at = at if self.started_at is None else min(self.started_at, at)
                self.attempts = max(self.attempts or 0, event.attempt)
            case Succeeded():
                outcome = _outcome(event, output=bytes(event.output).decode(), error=None)
            case Failed() | TimedOut() | Cancelled():
                outcome = _outcome(event, output=None, error=encoder.encode(event.error).decode())
        status = STATUS[type(event)]
        if RANK[status] > self.rank:  # only forward: the first terminal event held wins
            self.rank = RANK[status]
            self.outcome = {"status": status.value, **outcome}


def _outcome(event: Ended, *, output: str | None, error: str | None) -> Document:
    outcome: Document = {
        "trace": bytes(event.trace).decode(),
        "latency_ms": event.latency_ms,
        "finished_at": stamp(event.at),
    }
    # Absent fields read as null; leaving them out keeps nx-27017's writes cheaper.
    if output is not None:
        outcome["output"] = output
    if error is not None:
        outcome["error"] = error
    return outcome


def _facts(run: RunFold) -> Document:
    update: Document = {}
    if run.facts:
        update["$set"] = dict(run.facts)
    if run.started_at is not None:
        update["$min"] = {"started_at": run.started_at}
    if run.attempts is not None:
        update["$max"] = {"attempts": run.attempts}
    return update


def document(run_id: str, run: RunFold) -> Document:
    """The whole record of a run not written yet: what the upsert below would insert."""
    doc: Document = {"_id": run_id, **run.identity, **run.facts, **run.outcome, "rank": run.rank}
    if run.started_at is not None:
        doc["started_at"] = run.started_at
    if run.attempts is not None:
        doc["attempts"] = run.attempts
    return doc


def forward_write(run_id: str, run: RunFold) -> UpdateOne:
    """Insert, or move the record forward; a duplicate key if it is already as far."""
    update = _facts(run)
    update["$setOnInsert"] = run.identity
    update.setdefault("$set", {}).update(run.outcome, rank=run.rank)
    return UpdateOne({"_id": run_id, "rank": {"$lt": run.rank}}, update, upsert=True)


def first_write(run_id: str, run: RunFold) -> Write:
    """The one write a run normally takes: an insert if it is new, else ``forward_write``."""
    return InsertOne(document(run_id, run)) if run.new else forward_write(run_id, run)


def fallback_writes(run_id: str, run: RunFold) -> list[UpdateOne]:
    """For a record that already exists: its facts, and the status only if the record is
    behind (a redelivered new run, or a concurrent writer)."""
    writes = [
        UpdateOne(
            {"_id": run_id, "rank": {"$lt": run.rank}}, {"$set": {**run.outcome, "rank": run.rank}}
        )
    ]
    facts = _facts(run)
    if facts:
        writes.append(UpdateOne({"_id": run_id}, facts))
    return writes


@dataclass
class Held:
    """One run's events not written yet: their fold, their messages, and until when they may
    wait for more."""

    fold: RunFold
    due: float
    messages: list[Msg] = field(default_factory=list)


class Holding:
    """Runs whose events wait for their terminal event (``HOLD``), at most ``limit`` events in
    all. Runs are kept in the order they were first seen, which is also the order they are due."""

    def __init__(self, hold: float, limit: int) -> None:
        self._hold = hold
        self._limit = limit
        self._runs: dict[str, Held] = {}
        self._ended: list[str] = []  # runs whose terminal event is here
        self.events = 0

    def add(self, event: Event, msg: Msg, now: float) -> None:
        held = self._runs.get(event.run_id)
        if held is None:
            held = self._runs[event.run_id] = Held(RunFold.of(event), now + self._hold)
        before = held.fold.rank
        held.fold.add(event)
        held.messages.append(msg)
        self.events += 1
        if held.fold.rank == TERMINAL_RANK > before:
            self._ended.append(event.run_id)

    def due(self, now: float) -> dict[str, Held]:
        """Take the runs to write now: the ended, the due, and the oldest beyond the limit."""
        ready: dict[str, Held] = {}
        for run_id in self._ended:
            ended = self._runs.pop(run_id, None)
            if ended is not None:
                ready[run_id] = ended
                self.events -= len(ended.messages)
        self._ended.clear()
        while self._runs:
            run_id, oldest = next(iter(self._runs.items()))
            if oldest.due > now and self.events <= self._limit:
                break
            ready[run_id] = self._runs.pop(run_id)
            self.events -= len(oldest.messages)
        return ready

    def wait(self, now: float, longest: float) -> float:
        """Seconds until the oldest run is due, at most ``longest``."""
        if not self._runs:
            return longest
        oldest = next(iter(self._runs.values()))
        return min(longest, max(oldest.due - now, MIN_WAIT))

    def drain(self) -> dict[str, Held]:
        runs, self._runs, self.events = self._runs, {}, 0
        self._ended.clear()
        return runs


def hold_bounds(config: ConsumerConfig, batch: int) -> tuple[float, int]:
    """How long, and how many events, may be held: ``HOLD`` but at most a quarter of the
    consumer's ack wait (the rest is for writing), and half its ``max_ack_pending`` (the rest
    is for the batches being fetched and written; the server stops delivering at the limit)."""
    hold = min(HOLD, (config.ack_wait or ACK_WAIT) / 4)
    pending = config.max_ack_pending or 0
    return hold, (pending if pending > 0 else 4 * batch) // 2


@dataclass
class Batch:
    """Runs to write, with the messages to ack after."""

    runs: dict[str, Held]

    @property
    def size(self) -> int:
        return sum(len(held.messages) for held in self.runs.values())


class Persister:
    """Consumes EVENTS with the durable consumer ``registry`` and writes run records."""

    def __init__(self, nc: Client, store: Store, settings: RegistrySettings) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._store = store
        self._settings = settings
        self._holding = Holding(HOLD, 2 * settings.persist_batch)  # see ``running``
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Persister]:
        names = self._settings.names
        try:
            info = await self._js.consumer_info(names.events_stream, REGISTRY_CONSUMER)
            config = info.config
        except NotFoundError:
            config = ConsumerConfig(
                durable_name=REGISTRY_CONSUMER,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=ACK_WAIT,
                max_deliver=-1,
                max_ack_pending=max(4 * self._settings.persist_batch, 1000),
                filter_subject=names.events_all,
            )
            await self._js.add_consumer(names.events_stream, config)
        self._holding = Holding(*hold_bounds(config, self._settings.persist_batch))
        puller = Puller(self._nc, names.events_stream, REGISTRY_CONSUMER)
        await puller.start()
        self._task = asyncio.create_task(self._consume(puller), name="persist events")
        try:
            yield self
        finally:
            await self._stop()
            await puller.stop()

    async def _stop(self) -> None:
        self._stopping.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_WAIT)
        except TimeoutError:
            log.warning("the fetched events were not written in %.0f s; abandoning", STOP_WAIT)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _consume(self, puller: Puller) -> None:
        # Two stages, so MongoDB writes one batch while the next events are fetched and held.
        ready: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=1)
        reader = asyncio.create_task(self._read(puller, ready), name="read events")
        try:
            while (batch := await ready.get()) is not None:
                try:
                    await self.store(batch)
                except NatsError as err:  # acks lost: the server redelivers after ack_wait
                    log.warning("acknowledging %d events failed: %s", batch.size, err)
                except Exception:
                    # A bug, not a transport error: keep going; the unacked batch comes back.
                    log.exception("persisting %d events failed", batch.size)
                    await self._pause()
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _read(self, puller: Puller, out: asyncio.Queue[Batch | None]) -> None:
        size = self._settings.persist_batch
        linger = LINGER
        while not self._stopping.is_set():
            try:
                wait = self._holding.wait(time.monotonic(), FETCH_WAIT)
                messages = await puller.fetch(size, wait, linger)
                linger = 0.0 if len(messages) >= size else LINGER  # a backlog: no need to wait
                await self.hold(messages)
                runs = self._holding.due(time.monotonic())
                if runs:
                    await out.put(Batch(runs))
            except NatsError as err:
                log.warning("fetching events failed: %s", err)
                await self._pause()
            except Exception:
                log.exception("reading events failed")
                await self._pause()
        runs = self._holding.drain()  # stopping: what is held is written too
        if runs:
            await out.put(Batch(runs))
        await out.put(None)  # after the batches already read: those are still written

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), RETRY_DELAY)

    async def hold(self, messages: list[Msg]) -> None:
        """Decode fetched events into the runs held; ack what needs no write."""
        now = time.monotonic()
        for msg in messages:
            if msg.headers and msg.headers.get(EVENT_KIND_HEADER) == "block_finished":
                await msg.ack()
                continue
            try:
                event = event_decoder.decode(msg.data)
            except msgspec.DecodeError as err:
                log.error("terminating undecodable event on %s: %s", msg.subject, err)
                await msg.term()
                continue
            if isinstance(event, BlockFinished):  # published without its header
                await msg.ack()
                continue
            self._holding.add(event, msg, now)

    async def store(self, batch: Batch) -> None:
        """Write a batch's runs, then ack their events (or nak what could not be written)."""
        started = time.perf_counter()
        try:
            refused = await self.write({run_id: held.fold for run_id, held in batch.runs.items()})
        except PyMongoError as err:  # MongoDB as a whole: redeliver the batch later
            log.warning(
                "writing %d events failed, redelivering in %.0f s: %s",
                batch.size,
                RETRY_DELAY,
                err,
            )
            for held in batch.runs.values():
                for msg in held.messages:
                    await msg.nak(delay=RETRY_DELAY)
            await self._pause()
            return
        written_at = time.perf_counter()
        for run_id, held in batch.runs.items():
            if run_id not in refused:
                for msg in held.messages:
                    await msg.ack()
                continue
            for msg in held.messages:
                if msg.metadata.num_delivered < GIVE_UP_AFTER:
                    await msg.nak(delay=RETRY_DELAY)
                else:
                    log.error("run %s: giving up recording the event on %s", run_id, msg.subject)
                    await msg.term()
        log.debug(
            "persisted %d events of %d runs: write %.0f ms, ack %.0f ms",
            batch.size,
            len(batch.runs),
            1000 * (written_at - started),
            1000 * (time.perf_counter() - written_at),
        )

    async def write(self, runs: dict[str, RunFold]) -> set[str]:
        """Write the runs' records; the ids of runs whose record MongoDB refused."""
        changed = [(run_id, run) for run_id, run in runs.items() if run.rank > 0]
        refused: dict[str, str] = {}
        behind: list[tuple[str, UpdateOne]] = []
        for index, problem in await self._bulk([first_write(i, run) for i, run in changed]):
            run_id, run = changed[index]
            if problem is None:  # duplicate key: the record exists (and may be as far already)
                behind.extend((run_id, op) for op in fallback_writes(run_id, run))
            else:
                refused[run_id] = problem
        for index, problem in await self._bulk([op for _, op in behind]):
            refused[behind[index][0]] = problem or "duplicate key"
        for run_id, problem in refused.items():
            log.warning("run %s: MongoDB refused its record: %s", run_id, problem)
        return set(refused)

    async def _bulk(self, ops: list[Write] | list[UpdateOne]) -> list[tuple[int, str | None]]:
        """An unordered bulk write; (index, None) for each duplicate key, (index, message)
        for each other refused operation."""
        if not ops:
            return []
        try:
            await self._store.runs.bulk_write(ops, ordered=False)
        except BulkWriteError as err:
            return [
                (e["index"], None if e.get("code") == DUPLICATE_KEY else str(e.get("errmsg")))
                for e in err.details.get("writeErrors", [])
            ]
        return []
