"""Handing warm workers to calls: last in first out, waits bounded, none lost on cancellation;
a worker serves one application for its life."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from services.common.sealing import new_key
from services.executor.sandbox import Pool
from shared.settings import ExecutorSettings

APP = "app1"


class FakeWorker(SimpleNamespace):
    __eq__ = object.__eq__  # by identity, as a Worker (dataclass, eq=False)
    __hash__ = object.__hash__


def fake_worker(name: str, app_id: str | None = None) -> Any:
    """Enough of a Worker for the pool's bookkeeping: alive, its answer pipe open."""
    return FakeWorker(
        name=name,
        pid=0,
        popen=SimpleNamespace(poll=lambda: None, returncode=None),
        answers=SimpleNamespace(at_eof=False),
        app_id=app_id,
    )


@pytest.fixture
def pool() -> Pool:
    return Pool(ExecutorSettings(workers=2, secrets_key=new_key()))


def soon(seconds: float = 1.0) -> float:
    return asyncio.get_running_loop().time() + seconds


async def test_the_last_worker_back_is_the_first_out(pool: Pool) -> None:
    a, b = fake_worker("a"), fake_worker("b")
    pool._give(a)
    pool._give(b)
    assert await pool._take(soon(), APP) is b
    assert await pool._take(soon(), APP) is a


async def test_a_waiting_call_gets_the_next_worker_back(pool: Pool) -> None:
    first = asyncio.ensure_future(pool._take(soon(), APP))
    second = asyncio.ensure_future(pool._take(soon(), APP))
    await asyncio.sleep(0)
    a, b = fake_worker("a"), fake_worker("b")
    pool._give(a)
    pool._give(b)
    assert (await first, await second) == (a, b)  # in the order they waited


async def test_no_worker_before_the_deadline_is_a_timeout(pool: Pool) -> None:
    with pytest.raises(TimeoutError):
        await pool._take(soon(0.05), APP)
    worker = fake_worker("a")
    pool._give(worker)  # nobody is waiting any more: it is idle, not lost
    assert await pool._take(soon(), APP) is worker


async def test_a_call_cancelled_once_handed_a_worker_passes_it_on(pool: Pool) -> None:
    gone = asyncio.ensure_future(pool._take(soon(), APP))
    next_one = asyncio.ensure_future(pool._take(soon(), APP))
    await asyncio.sleep(0)
    worker = fake_worker("a")
    pool._give(worker)  # to ``gone``, which is cancelled before it runs again
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert await next_one is worker


async def test_a_dead_idle_worker_is_skipped(pool: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    replaced: list[Any] = []
    monkeypatch.setattr(pool, "_replace", replaced.append)
    dead, alive = fake_worker("dead"), fake_worker("alive")
    dead.popen.poll = lambda: -9
    pool._give(alive)
    pool._give(dead)
    assert await pool._take(soon(), APP) is alive
    assert replaced == [dead]


async def test_a_call_takes_a_worker_of_its_application_then_a_fresh_one(pool: Pool) -> None:
    mine, fresh, theirs = fake_worker("mine", APP), fake_worker("fresh"), fake_worker("t", "x")
    for worker in (mine, fresh, theirs):
        pool._give(worker)
    assert await pool._take(soon(), APP) is mine
    taken = await pool._take(soon(), APP)
    assert taken is fresh and fresh.app_id == APP  # fresh no more: it belongs to APP now
    assert pool._idle == [theirs]


async def test_a_worker_of_another_application_is_never_handed_over(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its process is stopped and a new one started for the call."""
    theirs, new = fake_worker("theirs", "x"), fake_worker("new")
    killed: list[Any] = []
    theirs.popen.kill = lambda: killed.append(theirs)

    async def stop(wait: float = 0) -> int:
        return -9

    async def spawn() -> Any:
        return new

    theirs.stop = stop
    monkeypatch.setattr(pool, "_spawn", spawn)
    pool._give(theirs)
    assert await pool._take(soon(), APP) is new
    assert new.app_id == APP and killed == [theirs]


async def test_claiming_the_last_fresh_worker_frees_one_of_an_application_holding_several(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    replaced: list[Any] = []
    monkeypatch.setattr(pool, "_replace", replaced.append)
    lone, old, recent = fake_worker("lone", "y"), fake_worker("old", "x"), fake_worker("new", "x")
    fresh = fake_worker("fresh")
    pool._workers = {lone, old, recent, fresh}
    for worker in (lone, old, recent, fresh):
        pool._give(worker)
    assert await pool._take(soon(), APP) is fresh
    assert replaced == [old]  # not y's only worker; x's least recently used
    assert pool._idle == [lone, recent]


async def test_a_worker_back_goes_to_a_waiting_call_of_its_application_first(pool: Pool) -> None:
    theirs = asyncio.ensure_future(pool._take(soon(), "x"))
    mine = asyncio.ensure_future(pool._take(soon(), APP))
    await asyncio.sleep(0)
    worker = fake_worker("mine", APP)
    pool._give(worker)  # the other application's call waited longer, but not for long
    assert await mine is worker
    assert not theirs.done()
    fresh = fake_worker("fresh")
    pool._give(fresh)
    assert await theirs is fresh


def replaceable(pool: Pool, monkeypatch: pytest.MonkeyPatch, worker: Any) -> Any:
    """``worker`` can be stopped; the pool's new processes are fakes. Returns the next one."""
    new = fake_worker("new")

    async def spawn() -> Any:
        return new

    async def stop(wait: float = 0) -> int:
        return -9

    worker.popen.kill = lambda: None
    worker.stop = stop
    monkeypatch.setattr(pool, "_spawn", spawn)
    return new


async def test_an_application_without_workers_gets_a_worker_back_within_patience(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("services.executor.sandbox.PATIENCE", 0.05)
    mine = fake_worker("mine", APP)
    pool._workers = {mine}
    new = replaceable(pool, monkeypatch, mine)
    theirs = asyncio.ensure_future(pool._take(soon(), "x"))
    await asyncio.sleep(0)
    pool._give(mine)  # APP's only worker: not taken at once, it stays idle...
    assert pool._idle == [mine] and not theirs.done()
    assert await theirs is new and new.app_id == "x"  # ...until x has waited long enough
    assert pool._idle == []


async def test_an_application_with_several_workers_gives_one_at_once(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, other = fake_worker("mine", APP), fake_worker("other", APP)
    pool._workers = {mine, other}
    new = replaceable(pool, monkeypatch, mine)
    theirs = asyncio.ensure_future(pool._take(soon(), "x"))
    await asyncio.sleep(0)
    pool._give(mine)
    assert await theirs is new


async def test_calls_of_an_application_with_a_worker_wait_for_their_own(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No process is started for them while their own worker is busy and another's has just
    come back; another application's worker idle for ``PATIENCE`` is taken."""
    busy, idle = fake_worker("busy", "x"), fake_worker("idle", APP)
    pool._workers = {busy, idle}
    new = replaceable(pool, monkeypatch, idle)
    pool._give(idle)
    waiting = asyncio.ensure_future(pool._take(soon(), "x"))
    await asyncio.sleep(0.01)
    assert not waiting.done() and pool._idle == [idle]
    pool._give(busy)
    assert await waiting is busy
    idle.idle_since -= 10  # APP has been quiet for a while
    assert await pool._take(soon(), "x") is new  # busy is in use: the quiet one is replaced
