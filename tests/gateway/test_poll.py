"""Polling a run: from its last event in the EVENTS stream, else from the registry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from services.common.ids import new_run_id
from shared.schemas import (
    BlockFinished,
    BlockTrace,
    RunError,
    RunEvent,
    RunFailed,
    RunStarted,
    RunState,
    RunSucceeded,
    Status,
    encoder,
)
from tests.gateway.conftest import World
from tests.gateway.doubles import RegistryDouble

pytestmark = pytest.mark.integration


def _fields(world: World, app_id: str, worklet_id: str, run_id: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "app_id": app_id,
        "worklet_id": worklet_id,
        "version": 3,
        "trigger": "api_async",
        "at": datetime.now(UTC),
    }


async def _publish(world: World, event: RunEvent) -> None:
    subject = world.names.events(event.app_id, event.worklet_id, event.run_id)
    await world.js.publish(subject, encoder.encode(event))


async def _queued_run(world: World) -> tuple[str, str]:
    worklet = await world.add_worklet(world.idle)
    r = await world.invoke(world.idle, worklet, {"worklet_input": {"a": 1}, "async": True})
    assert r.status_code == 202, r.text
    return worklet, r.json()["scheduled_worklet_run_id"]


async def test_poll_follows_a_run_from_queued_to_succeeded(world: World) -> None:
    worklet, run_id = await _queued_run(world)
    fields = _fields(world, world.idle, worklet, run_id)

    r = await world.poll(world.idle, worklet, run_id)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "run_id": run_id,
        "status": "QUEUED",
        "message": "Worklet is queued",
        "worklet_output": None,
        "latency_ms": None,
    }

    await _publish(world, RunStarted(**fields, attempt=1, executor="x"))
    r = await world.poll(world.idle, worklet, run_id, method="POST")
    assert (r.json()["status"], r.json()["message"]) == ("RUNNING", "Worklet is running")

    await _publish(world, BlockFinished(**fields, block=BlockTrace(block="main", type="code")))
    r = await world.poll(world.idle, worklet, run_id)
    assert r.json()["status"] == "RUNNING"

    output = msgspec.Raw(b'"woke up!"')
    await _publish(world, RunSucceeded(**fields, output=output, latency_ms=97))
    r = await world.poll(world.idle, worklet, run_id, method="POST")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "run_id": run_id,
        "status": "SUCCEEDED",
        "message": "Worklet has finished executing successfully",
        "worklet_output": "woke up!",
        "latency_ms": 97,
    }


async def test_poll_of_a_failed_run_has_the_error(world: World) -> None:
    worklet, run_id = await _queued_run(world)
    fields = _fields(world, world.idle, worklet, run_id)
    error = RunError(type="KeyError", message="'name'", block="greet", traceback="...")
    await _publish(world, RunFailed(**fields, error=error, latency_ms=5))
    r = await world.poll(world.idle, worklet, run_id)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "run_id": run_id,
        "status": "FAILED",
        "message": "Worklet failed: 'name'",
        "worklet_output": None,
        "latency_ms": 5,
        "error": {"type": "KeyError", "message": "'name'", "block": "greet"},
    }


async def test_poll_asks_the_registry_when_the_stream_has_no_event(world: World) -> None:
    worklet = await world.add_worklet(world.app)
    known = new_run_id()
    async with RegistryDouble(world.nc, world.names) as registry:
        registry.states[known] = RunState(
            run_id=known,
            app_id=world.app,
            worklet_id=worklet,
            status=Status.TIMED_OUT,
            error=RunError(type="Timeout", message="took longer than 300 s"),
            latency_ms=300_000,
        )
        r = await world.poll(world.app, worklet, known)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "run_id": known,
            "status": "TIMED_OUT",
            "message": "Worklet timed out: took longer than 300 s",
            "worklet_output": None,
            "latency_ms": 300_000,
            "error": {"type": "Timeout", "message": "took longer than 300 s", "block": None},
        }

        unknown = new_run_id()
        r = await world.poll(world.app, worklet, unknown)
        assert r.status_code == 404, r.text
        assert r.json() == {
            "success": False,
            "error": {"code": "not_found", "message": f"Run {unknown} not found"},
        }
        # the run of another worklet is not found through this one
        other_worklet = await world.add_worklet(world.app)
        r = await world.poll(world.app, other_worklet, known)
        assert r.status_code == 404, r.text
        assert [lookup.run_id for lookup in registry.lookups] == [known, unknown, known]


async def test_poll_without_a_registry_is_503(world: World) -> None:
    worklet = await world.add_worklet(world.app)
    r = await world.poll(world.app, worklet, new_run_id())
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "unavailable"
