"""Recording runs: events from the EVENTS stream folded into one MongoDB document per run.

A durable pull consumer (``registry``) delivers events in batches. A batch is decoded and
folded per run: identity (app, worklet, version, trigger...), *facts* (input and ``queued_at``
from ``queued``; earliest ``started_at`` and highest ``attempts`` from ``started``) and the
highest *status* seen, with its outcome (output, error, trace, latency, ``finished_at``).

Ranks keep a record from moving backwards: QUEUED 1 < RUNNING 2 < terminal 3. Each run is
written with one upsert filtered on ``{_id, rank: {$lt: new rank}}`` that sets identity on
insert and facts, status and outcome. That is one operation per run and batch (MongoDB, and
nx-27017 even more, is the bottleneck of the 1,000 runs/s this must sustain). When the record
already holds an equal or higher rank (an out-of-order or repeated event), the filter misses,
the upsert collides with the existing ``_id`` (duplicate key) and changes nothing; only those
runs get a second unordered bulk write: their facts as a plain update, and the status as an
update filtered on the rank, which matches only if another writer raced in between. So a
repeated terminal event changes nothing, and facts arriving late are still recorded.

The batch is acked after the writes. An undecodable event is logged and terminated; a MongoDB
failure naks the batch with a delay, so it is redelivered and written again (every write is
idempotent); a run whose record MongoDB itself refuses is retried the same way, and given up
(logged, terminated) after ``GIVE_UP_AFTER`` deliveries so it cannot block the others.
``block_finished`` events need no write (the terminal event carries the trace): they are
recognised by their ``Worklets-Event`` header and acked without being decoded.

Two stages keep both processes busy: while MongoDB writes one batch, the next is fetched
(``pull.py``) and decoded. Stopping lets the batches already fetched be written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, PyMongoError

from services.registry.pull import Puller
from services.registry.store import Document, Store, stamp
from shared.schemas import (
    RANK,
    BlockFinished,
    RunCancelled,
    RunEvent,
    RunFailed,
    RunQueued,
    RunStarted,
    RunSucceeded,
    RunTimedOut,
    TerminalEvent,
    encoder,
    event_decoder,
    status_of,
)
from shared.settings import RegistrySettings
from shared.subjects import EVENT_KIND_HEADER, REGISTRY_CONSUMER

log = logging.getLogger(__name__)

FETCH_WAIT = 1.0  # seconds a fetch waits for the first event of a batch
RETRY_DELAY = 2.0  # seconds before a batch that failed to write is redelivered
ACK_WAIT = 30.0  # seconds the server waits for a batch's acks before redelivering
STOP_WAIT = 30.0  # seconds allowed to finish the current batch when stopping
GIVE_UP_AFTER = 10  # deliveries of an event whose record MongoDB keeps refusing
DUPLICATE_KEY = 11000


@dataclass
class RunFold:
    """What one batch says about one run."""

    identity: Document
    facts: Document = field(default_factory=dict)
    started_at: str | None = None
    attempts: int | None = None
    rank: int = 0  # 0: nothing to write (only block_finished events)
    outcome: Document = field(default_factory=dict)

    def add(self, event: RunEvent) -> None:
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
            case RunSucceeded():
                outcome = _outcome(event, output=bytes(event.output).decode(), error=None)
            case RunFailed() | RunTimedOut() | RunCancelled():
                outcome = _outcome(event, output=None, error=encoder.encode(event.error).decode())
        status = status_of(event)
        if RANK[status] > self.rank:  # only forward: the first terminal event of a batch wins
            self.rank = RANK[status]
            self.outcome = {"status": status.value, **outcome}


def _outcome(event: TerminalEvent, *, output: str | None, error: str | None) -> Document:
    outcome: Document = {
        "trace": encoder.encode(event.trace).decode(),
        "latency_ms": event.latency_ms,
        "finished_at": stamp(event.at),
    }
    # Absent fields read as null; leaving them out keeps nx-27017's writes cheaper.
    if output is not None:
        outcome["output"] = output
    if error is not None:
        outcome["error"] = error
    return outcome


def fold(events: Iterable[RunEvent]) -> dict[str, RunFold]:
    """Events of a batch, in stream order, per run id."""
    runs: dict[str, RunFold] = {}
    for event in events:
        run = runs.get(event.run_id)
        if run is None:
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
            run = runs[event.run_id] = RunFold(identity=identity)
        run.add(event)
    return runs


def _facts(run: RunFold) -> Document:
    update: Document = {}
    if run.facts:
        update["$set"] = dict(run.facts)
    if run.started_at is not None:
        update["$min"] = {"started_at": run.started_at}
    if run.attempts is not None:
        update["$max"] = {"attempts": run.attempts}
    return update


def forward_write(run_id: str, run: RunFold) -> UpdateOne:
    """Insert, or move the record forward; a duplicate key if it is already as far."""
    update = _facts(run)
    update["$setOnInsert"] = run.identity
    update.setdefault("$set", {}).update(run.outcome, rank=run.rank)
    return UpdateOne({"_id": run_id, "rank": {"$lt": run.rank}}, update, upsert=True)


def fallback_writes(run_id: str, run: RunFold) -> list[UpdateOne]:
    """For a record already at this rank or beyond: its facts, and the status only if a
    concurrent writer left it behind."""
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
class Batch:
    """Fetched events, decoded: what to write, and which messages to ack after."""

    size: int
    runs: dict[str, RunFold] = field(default_factory=dict)
    owners: list[tuple[Msg, str]] = field(default_factory=list)  # decoded events and their run
    unwritten: list[Msg] = field(default_factory=list)  # block_finished, known by the header


class Persister:
    """Consumes EVENTS with the durable consumer ``registry`` and writes run records."""

    def __init__(self, nc: Client, store: Store, settings: RegistrySettings) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._store = store
        self._settings = settings
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Persister]:
        names = self._settings.names
        try:
            await self._js.consumer_info(names.events_stream, REGISTRY_CONSUMER)
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
            log.warning("the current batch did not finish in %.0f s; abandoning it", STOP_WAIT)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _consume(self, puller: Puller) -> None:
        # Two stages, so MongoDB writes one batch while the next is fetched and decoded.
        decoded: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=1)
        reader = asyncio.create_task(self._read(puller, decoded), name="read events")
        try:
            while (batch := await decoded.get()) is not None:
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
        while not self._stopping.is_set():
            try:
                messages = await puller.fetch(self._settings.persist_batch, FETCH_WAIT)
                if messages:
                    await out.put(await self.decode(messages))
            except NatsError as err:
                log.warning("fetching events failed: %s", err)
                await self._pause()
            except Exception:
                log.exception("reading events failed")
                await self._pause()
        await out.put(None)  # after the batches already read: those are still written

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), RETRY_DELAY)

    async def decode(self, messages: list[Msg]) -> Batch:
        batch = Batch(size=len(messages))
        events: list[RunEvent] = []
        for msg in messages:
            if msg.headers and msg.headers.get(EVENT_KIND_HEADER) == "block_finished":
                batch.unwritten.append(msg)
                continue
            try:
                event = event_decoder.decode(msg.data)
            except msgspec.DecodeError as err:
                log.error("terminating undecodable event on %s: %s", msg.subject, err)
                await msg.term()
                continue
            events.append(event)
            batch.owners.append((msg, event.run_id))
        batch.runs = fold(events)
        return batch

    async def store(self, batch: Batch) -> None:
        """Write a decoded batch, then ack it (or nak what could not be written)."""
        started = time.perf_counter()
        try:
            refused = await self.write(batch.runs)
        except PyMongoError as err:  # MongoDB as a whole: redeliver the batch later
            log.warning(
                "writing %d events failed, redelivering in %.0f s: %s",
                batch.size,
                RETRY_DELAY,
                err,
            )
            for msg in [*batch.unwritten, *(m for m, _ in batch.owners)]:
                await msg.nak(delay=RETRY_DELAY)
            await self._pause()
            return
        written_at = time.perf_counter()
        for msg in batch.unwritten:
            await msg.ack()
        for msg, run_id in batch.owners:
            if run_id not in refused:
                await msg.ack()
            elif msg.metadata.num_delivered < GIVE_UP_AFTER:
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
        """Write the batch's runs; the ids of runs whose record MongoDB refused."""
        changed = [(run_id, run) for run_id, run in runs.items() if run.rank > 0]
        refused: dict[str, str] = {}
        behind: list[tuple[str, UpdateOne]] = []
        for index, problem in await self._bulk([forward_write(i, run) for i, run in changed]):
            run_id, run = changed[index]
            if problem is None:  # duplicate key: the record is already at this rank or beyond
                behind.extend((run_id, op) for op in fallback_writes(run_id, run))
            else:
                refused[run_id] = problem
        for index, problem in await self._bulk([op for _, op in behind]):
            refused[behind[index][0]] = problem or "duplicate key"
        for run_id, problem in refused.items():
            log.warning("run %s: MongoDB refused its record: %s", run_id, problem)
        return set(refused)

    async def _bulk(self, ops: list[UpdateOne]) -> list[tuple[int, str | None]]:
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
