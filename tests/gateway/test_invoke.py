"""Invoking worklets: synchronous answers, background runs, timeouts."""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime

import msgspec
import pytest
from nats.js.errors import NotFoundError

from shared.schemas import (
    BlockTrace,
    RunError,
    RunQueued,
    RunRequest,
    RunStarted,
    RunSucceeded,
    encoder,
    event_decoder,
    run_request_decoder,
)
from shared.subjects import MSG_ID
from tests.gateway.conftest import World

pytestmark = pytest.mark.integration


async def test_sync_success_answers_the_output(world: World) -> None:
    worklet = await world.add_worklet(world.app, timeout=42)
    r = await world.invoke(world.app, worklet, {"worklet_input": {"name": "Ada"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body == {
        "success": True,
        "worklet_output": {"echo": {"name": "Ada"}},
        "latency_ms": 1,
        "run_id": body["run_id"],
    }
    request = world.executor.requests[body["run_id"]]
    assert request.trigger == "api"
    assert request.timeout == 42
    assert request.version == 3
    assert not request.background
    assert request.reply_to is not None
    assert request.reply_to.startswith(f"{world.names.prefix}.results.")


async def test_sync_run_uses_the_default_timeout(world: World) -> None:
    worklet = await world.add_worklet(world.app)
    r = await world.invoke(world.app, worklet, {"worklet_input": None})
    assert r.status_code == 200, r.text
    assert r.json()["worklet_output"] == {"echo": None}
    assert world.executor.requests[r.json()["run_id"]].timeout == 300


async def test_trace_only_when_asked(world: World) -> None:
    worklet = await world.add_worklet(world.app)
    plain = await world.invoke(world.app, worklet, {"worklet_input": 1})
    assert "trace" not in plain.json()
    traced = await world.invoke(world.app, worklet, {"worklet_input": 1, "trace": True})
    assert traced.status_code == 200, traced.text
    assert traced.json()["trace"] == [
        {
            "block": "main",
            "type": "code",
            "input": 1,
            "output": {"echo": 1},
            "logs": ["hello from main"],
            "duration_ms": 0.5,
            "next": None,
            "error": None,
            "child_run_id": None,
        }
    ]


async def test_user_error_is_a_200_with_the_error(world: World) -> None:
    worklet = await world.add_worklet(world.app)
    raised = {"type": "ZeroDivisionError", "message": "division by zero", "block": "divide"}
    r = await world.invoke(world.app, worklet, {"worklet_input": {"raise": raised}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body == {"success": False, "error": raised, "run_id": body["run_id"], "latency_ms": 2}


async def test_an_invoke_key_may_invoke_and_poll(world: World) -> None:
    worklet = await world.add_worklet(world.app)
    key = await world.add_key(world.app, role="invoke")
    r = await world.invoke(world.app, worklet, {"worklet_input": "hi"}, key=key)
    assert r.status_code == 200, r.text
    assert r.json()["worklet_output"] == {"echo": "hi"}
    poll = await world.http.get(
        f"/applications/{world.app}/worklets/{worklet}/{r.json()['run_id']}",
        headers={"Authorization": f"Api-Key {key}"},
    )
    assert poll.status_code == 200, poll.text
    assert poll.json()["status"] == "SUCCEEDED"


async def test_async_invoke_is_in_both_streams_when_202_arrives(world: World) -> None:
    worklet = await world.add_worklet(world.idle)
    r = await world.invoke(world.idle, worklet, {"worklet_input": [1, 2], "async": True})
    assert r.status_code == 202, r.text
    body = r.json()
    run_id = body["scheduled_worklet_run_id"]
    assert body == {
        "success": True,
        "scheduled_worklet_run_id": run_id,
        "message": "Worklet scheduled for background execution",
    }
    # No waiting: both publishes were acknowledged before the 202 was sent.
    names = world.names
    queued_msg = await world.js.get_last_msg(
        names.events_stream, names.events(world.idle, worklet, run_id), direct=True
    )
    assert queued_msg.headers is not None
    assert queued_msg.headers[MSG_ID] == f"{run_id}.queued"
    queued = event_decoder.decode(queued_msg.data or b"")
    assert isinstance(queued, RunQueued)
    assert (queued.trigger, queued.background, queued.timeout) == ("api_async", True, 3600)
    assert bytes(queued.input) == b"[1,2]"
    run_msg = await world.js.get_last_msg(names.runs_stream, names.runs(world.idle, worklet))
    assert run_msg.headers is not None
    assert run_msg.headers[MSG_ID] == run_id
    request = run_request_decoder.decode(run_msg.data or b"")
    assert isinstance(request, RunRequest)
    assert request.run_id == run_id
    assert (request.trigger, request.background, request.timeout) == ("api_async", True, 3600)
    assert request.reply_to is None
    assert (request.app_id, request.worklet_id, request.version) == (world.idle, worklet, 3)


async def test_background_setting_makes_any_invoke_a_background_run(world: World) -> None:
    worklet = await world.add_worklet(world.idle, background=True, background_timeout=120)
    r = await world.invoke(world.idle, worklet, {"worklet_input": {}})
    assert r.status_code == 202, r.text
    run_id = r.json()["scheduled_worklet_run_id"]
    names = world.names
    run_msg = await world.js.get_last_msg(names.runs_stream, names.runs(world.idle, worklet))
    request = run_request_decoder.decode(run_msg.data or b"")
    assert request.run_id == run_id
    assert (request.background, request.timeout, request.trigger) == (True, 120, "api_async")


async def test_background_run_in_an_executed_app_finishes(world: World) -> None:
    worklet = await world.add_worklet(world.app)
    r = await world.invoke(world.app, worklet, {"worklet_input": 7, "async": True})
    assert r.status_code == 202, r.text
    run_id = r.json()["scheduled_worklet_run_id"]
    async with asyncio.timeout(5):
        while (poll := await world.poll(world.app, worklet, run_id)).json()[
            "status"
        ] != "SUCCEEDED":
            assert poll.json()["status"] in ("QUEUED", "RUNNING"), poll.text
    assert poll.json()["worklet_output"] == {"echo": 7}


async def test_wait_runs_out_with_504_and_the_run_id_then_polls_queued(world: World) -> None:
    worklet = await world.add_worklet(world.idle, timeout=0.5)
    started = time.monotonic()
    r = await world.invoke(world.idle, worklet, {"worklet_input": 1})
    waited = time.monotonic() - started
    assert r.status_code == 504, r.text
    body = r.json()
    assert body["success"] is False
    assert body["error"]["code"] == "timeout"
    run_id = body["run_id"]
    assert 0.6 <= waited < 5, waited  # the run's 0.5 s plus the 0.2 s margin
    poll = await world.poll(world.idle, worklet, run_id)
    assert poll.status_code == 200, poll.text
    assert poll.json() == {
        "run_id": run_id,
        "status": "QUEUED",
        "message": "Worklet is queued",
        "worklet_output": None,
        "latency_ms": None,
    }


async def test_run_timed_out_is_504_with_the_run_id(world: World) -> None:
    worklet = await world.add_worklet(world.app, timeout=1)
    r = await world.invoke(world.app, worklet, {"worklet_input": {"time_out": True}})
    assert r.status_code == 504, r.text
    body = r.json()
    assert body["error"]["code"] == "timeout"
    assert "took longer than 1 s" in body["error"]["message"]
    assert body["run_id"] in world.executor.requests
    poll = await world.poll(world.app, worklet, body["run_id"])
    assert poll.json()["status"] == "TIMED_OUT"


async def test_sync_latency(world: World) -> None:
    """A rough end-to-end figure against the executor double in this process."""
    worklet = await world.add_worklet(world.app)
    url = f"/applications/{world.app}/worklets/{worklet}/invoke"
    headers = world.auth(world.app)
    payload = b'{"worklet_input": {"n": 1}}'
    for _ in range(20):  # warm up
        await world.http.post(url, content=payload, headers=headers)
    times = []
    for _ in range(200):
        started = time.perf_counter()
        r = await world.http.post(url, content=payload, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200
    p50 = statistics.median(times)
    p99 = sorted(times)[int(len(times) * 0.99) - 1]
    print(f"sync invoke against the executor double: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    assert p50 < 50


async def test_only_a_terminal_event_answers_a_waiting_invoke(world: World) -> None:
    """What arrives on the results subject: other events and garbage are ignored; the trace of
    the terminal event is what the answer shows."""
    worklet = await world.add_worklet(world.idle, timeout=5)
    invoke = asyncio.create_task(
        world.invoke(world.idle, worklet, {"worklet_input": 1, "trace": True})
    )
    names = world.names
    async with asyncio.timeout(5):
        while True:
            try:
                msg = await world.js.get_last_msg(
                    names.runs_stream, names.runs(world.idle, worklet)
                )
                break
            except NotFoundError:
                await asyncio.sleep(0.01)
    request = run_request_decoder.decode(msg.data or b"")
    assert request.reply_to is not None and request.trace
    fields = {
        "run_id": request.run_id,
        "app_id": world.idle,
        "worklet_id": worklet,
        "version": 3,
        "trigger": "api",
        "at": datetime.now(UTC),
    }
    trace = BlockTrace(
        block="b",
        type="code",
        input=msgspec.Raw(b"1"),
        output=msgspec.Raw(b"2"),
        started_at=datetime.now(UTC),
        error=RunError(type="T", message="m", traceback="not for clients"),
    )
    await world.nc.publish(request.reply_to, encoder.encode(RunStarted(**fields)))
    await world.nc.publish(request.reply_to, b"not json")
    end = RunSucceeded(**fields, output=msgspec.Raw(b"2"), latency_ms=9, trace=[trace])
    await world.nc.publish(request.reply_to, encoder.encode(end))
    r = await invoke
    assert r.status_code == 200, r.text
    assert r.json() == {
        "success": True,
        "worklet_output": 2,
        "latency_ms": 9,
        "run_id": request.run_id,
        "trace": [
            {
                "block": "b",
                "type": "code",
                "input": 1,
                "output": 2,
                "logs": [],
                "duration_ms": 0.0,
                "next": None,
                "error": {"type": "T", "message": "m", "block": None},
                "child_run_id": None,
            }
        ],
    }
