"""Handing warm workers to calls: last in first out, waits bounded, none lost on cancellation."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from services.executor.sandbox import Pool
from shared.settings import ExecutorSettings


def fake_worker(name: str) -> Any:
    """Enough of a Worker for the pool's bookkeeping: alive, its answer pipe open."""
    return SimpleNamespace(
        name=name,
        pid=0,
        popen=SimpleNamespace(poll=lambda: None, returncode=None),
        answers=SimpleNamespace(at_eof=False),
    )


@pytest.fixture
def pool() -> Pool:
    return Pool(ExecutorSettings(workers=2))


def soon(seconds: float = 1.0) -> float:
    return asyncio.get_running_loop().time() + seconds


async def test_the_last_worker_back_is_the_first_out(pool: Pool) -> None:
    a, b = fake_worker("a"), fake_worker("b")
    pool._give(a)
    pool._give(b)
    assert await pool._take(soon()) is b
    assert await pool._take(soon()) is a


async def test_a_waiting_call_gets_the_next_worker_back(pool: Pool) -> None:
    first = asyncio.ensure_future(pool._take(soon()))
    second = asyncio.ensure_future(pool._take(soon()))
    await asyncio.sleep(0)
    a, b = fake_worker("a"), fake_worker("b")
    pool._give(a)
    pool._give(b)
    assert (await first, await second) == (a, b)  # in the order they waited


async def test_no_worker_before_the_deadline_is_a_timeout(pool: Pool) -> None:
    with pytest.raises(TimeoutError):
        await pool._take(soon(0.05))
    worker = fake_worker("a")
    pool._give(worker)  # nobody is waiting any more: it is idle, not lost
    assert await pool._take(soon()) is worker


async def test_a_call_cancelled_once_handed_a_worker_passes_it_on(pool: Pool) -> None:
    gone = asyncio.ensure_future(pool._take(soon()))
    next_one = asyncio.ensure_future(pool._take(soon()))
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
    assert await pool._take(soon()) is alive
    assert replaced == [dead]
