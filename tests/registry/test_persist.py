"""The persister's parts: which held runs are due, and what their writes do to a record.

The holding is driven with explicit clock values; the writes go to the session's nx-27017, in a
database of their own. How many writes a run takes is measured by the benchmark, not here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig
from pymongo import AsyncMongoClient, InsertOne, UpdateOne

from services.common.ids import new_id
from services.common.sealing import new_key
from services.registry.persist import (
    Event,
    Holding,
    Persister,
    RunFold,
    event_decoder,
    first_write,
    forward_write,
    hold_bounds,
)
from services.registry.store import Store
from shared.schemas import encoder
from shared.settings import RegistrySettings
from tests.registry.test_runs import Run
from tests.stack import Servers


def received(*events: Any) -> list[Event]:
    """Events as the persister decodes them from the stream."""
    return [event_decoder.decode(encoder.encode(event)) for event in events]


def fold(*events: Any) -> RunFold:
    decoded = received(*events)
    run = RunFold.of(decoded[0])
    for event in decoded:
        run.add(event)
    return run


def message() -> Msg:
    return cast(Msg, object())  # held, never used


def hold(holding: Holding, now: float, *events: Any) -> None:
    for event in received(*events):
        holding.add(event, message(), now)


def test_a_run_is_held_until_its_end() -> None:
    holding = Holding(hold=5.0, limit=100)
    run = Run("app", "wk1")
    hold(holding, 0.0, run.queued())
    hold(holding, 0.1, run.started())
    assert holding.due(0.2) == {}
    assert holding.wait(0.2, 1.0) == 1.0  # nothing due before the fetch's own wait

    hold(holding, 0.3, run.succeeded())
    ready = holding.due(0.3)
    assert list(ready) == [run.run_id]
    held = ready[run.run_id]
    assert (held.fold.rank, held.fold.new, len(held.messages)) == (3, True, 3)
    assert holding.events == 0 and holding.due(10.0) == {}


def test_a_run_without_its_end_is_written_when_its_hold_expires() -> None:
    holding = Holding(hold=5.0, limit=100)
    run = Run("app", "wk1")
    hold(holding, 0.0, run.queued())
    hold(holding, 1.0, run.started())
    assert holding.wait(1.0, 10.0) == 4.0  # counted from the run's first event
    assert holding.due(4.9) == {}
    ready = holding.due(5.0)
    assert list(ready) == [run.run_id] and ready[run.run_id].fold.rank == 2
    # what comes later is held again, as a run of its own
    hold(holding, 6.0, run.succeeded())
    ready = holding.due(6.0)
    assert ready[run.run_id].fold.rank == 3 and not ready[run.run_id].fold.new


def test_beyond_the_limit_the_oldest_runs_are_written_first() -> None:
    holding = Holding(hold=5.0, limit=2)
    a, b, c = Run("app", "wk1"), Run("app", "wk1"), Run("app", "wk1")
    hold(holding, 0.0, a.queued())
    hold(holding, 0.1, b.queued())
    assert holding.due(0.1) == {}
    hold(holding, 0.2, c.queued())
    assert list(holding.due(0.2)) == [a.run_id]
    assert list(holding.drain()) == [b.run_id, c.run_id]
    assert holding.events == 0


def test_the_hold_stays_within_the_consumer_limits() -> None:
    assert hold_bounds(ConsumerConfig(ack_wait=30.0, max_ack_pending=4000), 1000) == (5.0, 2000)
    assert hold_bounds(ConsumerConfig(ack_wait=8.0, max_ack_pending=100), 1000) == (2.0, 50)
    assert hold_bounds(ConsumerConfig(ack_wait=30.0, max_ack_pending=-1), 10) == (5.0, 20)


def test_a_new_run_is_inserted_whole() -> None:
    run = Run("app", "wk1")
    assert isinstance(first_write(run.run_id, fold(*run.all())), InsertOne)
    # without its queued event the record may exist: moved forward by an upsert
    assert isinstance(first_write(run.run_id, fold(run.started(), run.succeeded())), UpdateOne)


# ------------------------------------------------------------------ writes to nx-27017


@pytest.fixture
async def store(servers: Servers) -> AsyncIterator[Store]:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(servers.mongo_url)
    store = Store(mongo["t" + new_id(10)])
    await store.create_indexes()
    try:
        yield store
    finally:
        await mongo.close()


@pytest.fixture
def persister(servers: Servers, nc: Client, store: Store) -> Persister:
    settings = RegistrySettings(
        admin_token="x" * 16, secrets_key=new_key(), mongo_url=servers.mongo_url
    )
    return Persister(nc, store, settings)


async def written(persister: Persister, store: Store, run_id: str, *events: Any) -> dict[str, Any]:
    """Write the fold of ``events`` as one batch; the record after."""
    assert await persister.write({run_id: fold(*events)}) == set()
    doc = await store.runs.find_one({"_id": run_id})
    assert doc is not None
    return doc


async def test_an_insert_makes_the_record_an_upsert_would(
    persister: Persister, store: Store
) -> None:
    inserted, upserted = Run("app", "wk1", schedule_id="s1"), Run("app", "wk1", schedule_id="s1")
    doc = await written(persister, store, inserted.run_id, *inserted.all())
    await store.runs.bulk_write([forward_write(upserted.run_id, fold(*upserted.all()))])
    other = await store.runs.find_one({"_id": upserted.run_id})
    assert other is not None
    ids = {"_id", "run_id"}
    assert {k: v for k, v in doc.items() if k not in ids} == {
        k: v for k, v in other.items() if k not in ids
    }
    assert (doc["status"], doc["rank"], doc["attempts"]) == ("SUCCEEDED", 3, 1)
    assert doc["trace"] == encoder.encode(inserted.trace).decode()


async def test_a_redelivered_new_run_moves_its_record_forward(
    persister: Persister, store: Store
) -> None:
    run = Run("app", "wk1")
    queued = await written(persister, store, run.run_id, run.queued())
    assert (queued["status"], queued["rank"]) == ("QUEUED", 1)
    # the queued event again (not acked before a crash) with the rest: the insert collides
    doc = await written(persister, store, run.run_id, run.queued(), run.started(), run.succeeded())
    assert (doc["status"], doc["rank"], doc["output"]) == ("SUCCEEDED", 3, '"Hello Ada"')
    assert (doc["started_at"], doc["attempts"]) == ("2026-01-31T12:00:01.000000Z", 1)
    assert doc["queued_at"] == queued["queued_at"]


async def test_a_repeated_end_changes_nothing_and_late_facts_are_kept(
    persister: Persister, store: Store
) -> None:
    run = Run("app", "wk1")
    first = await written(persister, store, run.run_id, *run.all())
    again = await written(
        persister, store, run.run_id, *run.all()[:2], run.succeeded(b'"again"', 9)
    )
    assert again == first
    failed = await written(persister, store, run.run_id, run.failed())
    assert failed == first
    late = await written(persister, store, run.run_id, run.started(attempt=2, seconds=0.5))
    assert (late["status"], late["output"], late["finished_at"]) == (
        "SUCCEEDED",
        '"Hello Ada"',
        "2026-01-31T12:00:02.000000Z",
    )
    assert (late["attempts"], late["started_at"]) == (2, "2026-01-31T12:00:00.500000Z")
