"""Nothing is lost: executors killed mid-run, gateway and registry restarted while runs wait."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from shared.schemas import RunStarted, event_decoder
from tests.integration.workload import TERMINAL_KINDS, Gateway, count_kinds, kind, read_events
from tests.stack import Servers, Stack, code_worklet

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

DOUBLE = """
import time

def main(block_input):
    time.sleep(0.02)
    return {"n": block_input["n"] * 2}
"""


async def after_terminal_events(
    nc: Client, stack: Stack, app_id: str, count: int
) -> tuple[Any, asyncio.Event, list[int]]:
    """A live subscription: (subscription, set once `count` runs ended, [runs ended])."""
    seen = [0]
    reached = asyncio.Event()

    async def on_event(msg: Msg) -> None:
        if kind(event_decoder.decode(msg.data)) in TERMINAL_KINDS:
            seen[0] += 1
            if seen[0] >= count:
                reached.set()

    sub = await nc.subscribe(stack.names.events_of_app(app_id), cb=on_event)
    return sub, reached, seen


def recorded_runs(stack: Stack, app_id: str, worklet_id: str) -> list[dict[str, Any]]:
    """Every run record of a worklet, through the registry API's pages."""
    runs: list[dict[str, Any]] = []
    cursor: str | None = None
    with stack.admin() as client:
        while True:
            params: dict[str, Any] = {"worklet_id": worklet_id, "limit": 200}
            if cursor:
                params["cursor"] = cursor
            page = client.get(f"/v1/applications/{app_id}/runs", params=params)
            assert page.status_code == 200, page.text
            body = page.json()
            runs.extend(body["items"])
            cursor = body["next_cursor"]
            if not cursor:
                return runs


async def wait_recorded(
    stack: Stack, app_id: str, worklet_id: str, expected: int, timeout: float = 60
) -> list[dict[str, Any]]:
    async with asyncio.timeout(timeout):
        while True:
            runs = await asyncio.to_thread(recorded_runs, stack, app_id, worklet_id)
            if len(runs) == expected and all(r["status"] == "SUCCEEDED" for r in runs):
                return runs
            await asyncio.sleep(0.2)


async def test_executor_killed_during_200_background_runs(
    servers: Servers, tmp_path: Path, nc: Client
) -> None:
    with Stack(servers, tmp_path, WORKLETS_ACK_WAIT="2", WORKLETS_WORKERS="2") as stack:
        stack.start("registry")
        stack.start("gateway")
        first = stack.start("executor")
        app_id, key = stack.create_app()
        worklet_id = stack.deploy(app_id, code_worklet("double", DOUBLE))["id"]
        gateway = Gateway(stack, app_id, key)
        sub, forty_done, finished = await after_terminal_events(nc, stack, app_id, 40)
        try:
            run_ids = await asyncio.gather(
                *(gateway.start(worklet_id, {"n": i}) for i in range(200))
            )
            async with asyncio.timeout(60):
                await forty_done.wait()
            first.kill(signal.SIGKILL)
            first.popen.wait(10)
            assert finished[0] < 200, "the executor finished everything before it was killed"
            stack.start("executor", name="executor-2")

            results = await asyncio.gather(*(gateway.wait(worklet_id, r, 120) for r in run_ids))
            for i, result in enumerate(results):
                assert result["status"] == "SUCCEEDED", result
                assert result["worklet_output"] == {"n": i * 2}

            runs = await wait_recorded(stack, app_id, worklet_id, 200)
            assert sorted(r["run_id"] for r in runs) == sorted(run_ids)

            events = await read_events(nc, stack, app_id)
            assert count_kinds(events, TERMINAL_KINDS) == dict.fromkeys(run_ids, 1)
            attempts = [e.attempt for e in events if isinstance(e, RunStarted)]
            assert max(attempts) >= 2, "no run was redelivered after the kill"
        finally:
            await sub.unsubscribe()
            await gateway.close()


async def test_gateway_and_registry_restart_while_runs_are_queued(
    servers: Servers, tmp_path: Path
) -> None:
    with Stack(servers, tmp_path) as stack:
        registry = stack.start("registry")
        gateway_proc = stack.start("gateway")
        app_id, key = stack.create_app()
        worklet_id = stack.deploy(app_id, code_worklet("double", DOUBLE))["id"]
        gateway = Gateway(stack, app_id, key)
        try:
            run_ids = await asyncio.gather(
                *(gateway.start(worklet_id, {"n": i}) for i in range(50))
            )
            assert (await gateway.poll(worklet_id, run_ids[0])).json()["status"] == "QUEUED"

            gateway_proc.kill(signal.SIGKILL)
            gateway_proc.popen.wait(10)
            stack.start("gateway")
            for run_id in run_ids:
                polled = await gateway.poll(worklet_id, run_id)
                assert polled.status_code == 200 and polled.json()["status"] == "QUEUED"

            registry.kill(signal.SIGKILL)
            registry.popen.wait(10)
            stack.start("registry")

            stack.start("executor")
            results = await asyncio.gather(*(gateway.wait(worklet_id, r) for r in run_ids))
            assert [r["worklet_output"] for r in results] == [{"n": i * 2} for i in range(50)]
            runs = await wait_recorded(stack, app_id, worklet_id, 50)
            assert {r["run_id"] for r in runs} == set(run_ids)
        finally:
            await gateway.close()


async def test_two_executors_share_the_load_and_run_each_run_once(
    servers: Servers, tmp_path: Path, nc: Client
) -> None:
    with Stack(servers, tmp_path, WORKLETS_WORKERS="1") as stack:
        stack.start("registry")
        stack.start("gateway")
        stack.start("executor", name="executor-1")
        stack.start("executor", name="executor-2")
        app_id, key = stack.create_app()
        worklet_id = stack.deploy(app_id, code_worklet("double", DOUBLE))["id"]
        gateway = Gateway(stack, app_id, key)
        try:
            run_ids = await asyncio.gather(
                *(gateway.start(worklet_id, {"n": i}) for i in range(100))
            )
            results = await asyncio.gather(*(gateway.wait(worklet_id, r) for r in run_ids))
            assert all(r["status"] == "SUCCEEDED" for r in results)

            events = await read_events(nc, stack, app_id)
            started = [e for e in events if isinstance(e, RunStarted)]
            assert count_kinds(events, ("started",)) == dict.fromkeys(run_ids, 1)
            assert len({e.executor for e in started}) == 2, "one executor did all the work"
        finally:
            await gateway.close()
