"""At-least-once delivery of runs: in-progress acks, kill -9 and SIGTERM of an executor."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator

import pytest
from nats.js.api import ConsumerConfig

from shared.schemas import RunEvent, RunFailed, RunStarted, RunSucceeded
from shared.subjects import EXECUTORS_CONSUMER
from tests.executor.conftest import EXECUTOR_ENV, connect_harness
from tests.executor.harness import Harness, is_terminal, output
from tests.stack import Servers, Stack

pytestmark = pytest.mark.integration

SLOW = "import time\ndef main(x, env, context):\n    time.sleep(x)\n    return context.attempt\n"


def attempts(events: list[RunEvent]) -> list[int]:
    return [e.attempt for e in events if isinstance(e, RunStarted)]


async def test_long_run_is_delivered_once_thanks_to_in_progress_acks(harness: Harness) -> None:
    # ack wait is 1 s: without in-progress acks this run would be redelivered three times
    worklet = await harness.code(SLOW)
    end = await harness.invoke(worklet, 4)
    assert output(end) == 1
    events = await harness.stored_events(worklet, end.run_id)
    assert attempts(events) == [1]
    assert sum(map(is_terminal, events)) == 1


@pytest.fixture
def chaos(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own: these tests kill executors and start new ones on one prefix."""
    env = {**EXECUTOR_ENV, "WORKLETS_SHUTDOWN_GRACE": "0.2"}
    with Stack(servers, tmp_path_factory.mktemp("chaos"), **env) as stack:
        yield stack


@pytest.fixture
async def chaos_harness(chaos: Stack) -> AsyncIterator[Harness]:
    h, nc = await connect_harness(chaos)
    try:
        yield h
    finally:
        await nc.close()


async def start_executor(stack: Stack, name: str) -> None:
    await asyncio.to_thread(stack.start, "executor", name)


@pytest.mark.chaos
async def test_killed_executor_run_is_redelivered_and_recorded_once(
    chaos: Stack, chaos_harness: Harness
) -> None:
    h = chaos_harness
    await start_executor(chaos, "first")
    worklet = await h.code(SLOW)
    run_id = await h.submit(worklet, 1.5)
    await h.events.wait(run_id, lambda es: attempts(es) == [1])
    chaos.processes["first"].kill(signal.SIGKILL)
    await asyncio.to_thread(chaos.processes["first"].popen.wait, 5)

    await start_executor(chaos, "second")
    end = await h.events.terminal(run_id, timeout=20)
    assert isinstance(end, RunSucceeded) and output(end) == 2
    stored = await h.stored_events(worklet, run_id)
    assert attempts(stored) == [1, 2]
    assert [type(e) for e in stored if is_terminal(e)] == [RunSucceeded]


@pytest.mark.chaos
async def test_sigterm_naks_runs_past_the_grace_and_another_executor_finishes_them(
    chaos: Stack, chaos_harness: Harness
) -> None:
    h = chaos_harness
    await start_executor(chaos, "first")
    worklet = await h.code(SLOW)
    quick = await h.submit(worklet, 0)
    assert output(await h.events.terminal(quick)) == 1
    run_id = await h.submit(worklet, 2)
    await h.events.wait(run_id, lambda es: attempts(es) == [1])
    first = chaos.processes["first"]
    first.kill(signal.SIGTERM)  # grace 0.2 s: the run is cut short and nak'ed
    assert await asyncio.to_thread(first.popen.wait, 10) == 0

    await start_executor(chaos, "second")
    end = await h.events.terminal(run_id, timeout=20)
    assert isinstance(end, RunSucceeded) and output(end) == 2
    assert attempts(await h.stored_events(worklet, run_id)) == [1, 2]


@pytest.mark.chaos
async def test_run_delivered_too_often_fails_with_redelivery_limit(
    chaos: Stack, chaos_harness: Harness
) -> None:
    h = chaos_harness
    # A consumer left with another configuration is brought to the executor's.
    config = ConsumerConfig(
        durable_name=EXECUTORS_CONSUMER,
        ack_wait=30,
        max_deliver=5,
        filter_subject=h.names.runs_all,
    )
    await h.js.add_consumer(h.names.runs_stream, config)
    await start_executor(chaos, "first")
    info = await h.js.consumer_info(h.names.runs_stream, EXECUTORS_CONSUMER)
    assert (info.config.ack_wait, info.config.max_deliver) == (1, -1)

    worklet = await h.code(SLOW)
    run_id = await h.submit(worklet, 1.5)
    await h.events.wait(run_id, lambda es: attempts(es) == [1])
    chaos.processes["first"].kill(signal.SIGKILL)
    await asyncio.to_thread(chaos.processes["first"].popen.wait, 5)

    await asyncio.to_thread(chaos.start, "executor", "second", WORKLETS_MAX_DELIVERIES="1")
    end = await h.events.terminal(run_id, timeout=20)
    assert isinstance(end, RunFailed) and end.error.type == "RedeliveryLimit"
    assert "2 times" in end.error.message


@pytest.mark.chaos
async def test_executor_keeps_asking_after_its_consumer_is_deleted_and_recreated(
    chaos: Stack, chaos_harness: Harness
) -> None:
    h = chaos_harness
    await start_executor(chaos, "first")
    worklet = await h.code(SLOW)
    assert output(await h.invoke(worklet, 0)) == 1
    info = await h.js.consumer_info(h.names.runs_stream, EXECUTORS_CONSUMER)
    await h.js.delete_consumer(h.names.runs_stream, EXECUTORS_CONSUMER)
    await asyncio.sleep(1.5)  # its open pull request is refused, the next ones find no one
    await h.js.add_consumer(h.names.runs_stream, info.config)
    end = await h.invoke(worklet, 0, timeout=5)
    assert isinstance(end, RunSucceeded) and output(end) == 1
    assert chaos.processes["first"].alive()
