"""Run events on the EVENTS stream become run records: the runs API and ``runs.get``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
from msgspec import Raw
from nats.aio.client import Client
from pymongo.asynchronous.database import AsyncDatabase

from services.common.ids import new_id, new_run_id
from shared.schemas import (
    BlockFinished,
    BlockTrace,
    RunError,
    RunFailed,
    RunLookup,
    RunQueued,
    RunStarted,
    RunState,
    RunSucceeded,
    Status,
    encoder,
)
from shared.subjects import ERROR_HEADER, Names
from tests.registry.support import eventually, publish
from tests.registry.test_access import assert_error
from tests.stack import Stack

Database = AsyncDatabase[dict[str, Any]]
T0 = datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC)


class Run:
    """Events of one run, as the gateway and executor would publish them."""

    def __init__(self, app_id: str, worklet_id: str, run_id: str | None = None, **extra: Any):
        self.ids: dict[str, Any] = {
            "run_id": run_id or new_run_id(),
            "app_id": app_id,
            "worklet_id": worklet_id,
            "version": 1,
            "trigger": "api",
            **extra,
        }
        self.run_id: str = self.ids["run_id"]
        self.trace = [
            BlockTrace(
                block="prepare",
                type="code",
                input=Raw(b'{"name":"Ada"}'),
                output=Raw(b'{"name":"Ada"}'),
                logs=["hi"],
                duration_ms=1.5,
                next="greet",
            ),
            BlockTrace(
                block="greet",
                type="code",
                input=Raw(b'{"name":"Ada"}'),
                output=Raw(b'"Hello Ada"'),
                duration_ms=0.5,
            ),
        ]

    def at(self, seconds: float) -> datetime:
        return T0 + timedelta(seconds=seconds)

    def queued(self) -> RunQueued:
        return RunQueued(**self.ids, at=self.at(0), input=Raw(b'{"name": "Ada"}'), timeout=300)

    def started(self, attempt: int = 1, seconds: float = 1) -> RunStarted:
        return RunStarted(**self.ids, at=self.at(seconds), attempt=attempt, executor="ex-1")

    def block(self, index: int) -> BlockFinished:
        return BlockFinished(**self.ids, at=self.at(1.5), block=self.trace[index])

    def succeeded(self, output: bytes = b'"Hello Ada"', seconds: float = 2) -> RunSucceeded:
        return RunSucceeded(
            **self.ids, at=self.at(seconds), output=Raw(output), latency_ms=1000, trace=self.trace
        )

    def failed(self) -> RunFailed:
        error = RunError(type="ZeroDivisionError", message="division by zero", block="greet")
        return RunFailed(**self.ids, at=self.at(2), error=error, latency_ms=900, trace=self.trace)

    def all(self) -> list[Any]:
        return [self.queued(), self.started(), self.block(0), self.block(1), self.succeeded()]


async def record(mongo: Database, run_id: str, status: Status | None = None) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        doc = await mongo["runs"].find_one({"_id": run_id})
        if doc is not None and (status is None or doc.get("status") == status):
            return doc
        return None

    return await eventually(found, f"run {run_id} to be recorded as {status}")


async def test_events_become_a_run_record(
    admin: httpx.AsyncClient, app: tuple[str, str], nc: Client, registry: Stack, mongo: Database
) -> None:
    app_id, _ = app
    run = Run(app_id, "wk1", schedule_id="sched-1")
    await publish(nc, registry.prefix, *run.all())
    await record(mongo, run.run_id, Status.SUCCEEDED)

    detail = (await admin.get(f"/v1/applications/{app_id}/runs/{run.run_id}")).json()
    assert detail == {
        "run_id": run.run_id,
        "worklet_id": "wk1",
        "version": 1,
        "trigger": "api",
        "status": "SUCCEEDED",
        "latency_ms": 1000,
        "parent_run_id": None,
        "schedule_id": "sched-1",
        "queued_at": "2026-01-31T12:00:00Z",
        "started_at": "2026-01-31T12:00:01Z",
        "finished_at": "2026-01-31T12:00:02Z",
        "input": {"name": "Ada"},
        "worklet_output": "Hello Ada",
        "error": None,
        "attempts": 1,
        "trace": msgspec.json.decode(encoder.encode(run.trace)),
    }
    assert detail["trace"][0]["logs"] == ["hi"] and detail["trace"][0]["next"] == "greet"


async def test_failed_run_and_redelivery(
    admin: httpx.AsyncClient, app: tuple[str, str], nc: Client, registry: Stack, mongo: Database
) -> None:
    app_id, _ = app
    run = Run(app_id, "wk1")
    # delivered twice: the second attempt started later; the earliest start and the highest
    # attempt are kept
    await publish(nc, registry.prefix, run.queued(), run.started(1, 1), run.started(2, 5))
    await publish(nc, registry.prefix, run.failed())
    doc = await record(mongo, run.run_id, Status.FAILED)
    assert doc["attempts"] == 2
    detail = (await admin.get(f"/v1/applications/{app_id}/runs/{run.run_id}")).json()
    assert detail["error"] == {
        "type": "ZeroDivisionError",
        "message": "division by zero",
        "block": "greet",
    }
    assert detail["worklet_output"] is None
    assert (detail["started_at"], detail["attempts"]) == ("2026-01-31T12:00:01Z", 2)


async def test_out_of_order_terminal_stays_terminal(
    app: tuple[str, str], nc: Client, registry: Stack, mongo: Database, admin: httpx.AsyncClient
) -> None:
    app_id, _ = app
    run = Run(app_id, "wk1")
    await publish(nc, registry.prefix, run.succeeded())
    await record(mongo, run.run_id, Status.SUCCEEDED)
    # the earlier events arrive late, one by one and then together
    await publish(nc, registry.prefix, run.started())
    await publish(nc, registry.prefix, run.queued())
    await publish(nc, registry.prefix, run.queued(), run.started(), run.block(0))

    # the queued event's facts are still recorded, its status is not
    async def late_facts() -> dict[str, Any] | None:
        # checked here: nx-27017 matches a missing field with {"$ne": None}
        doc = await mongo["runs"].find_one({"_id": run.run_id})
        return doc if doc is not None and doc.get("queued_at") else None

    doc = await eventually(late_facts, "the late queued event's facts")
    assert (doc["status"], doc["rank"], doc["output"]) == ("SUCCEEDED", 3, '"Hello Ada"')
    assert doc["started_at"] == "2026-01-31T12:00:01.000000Z"
    await _settled(nc, registry)
    detail = (await admin.get(f"/v1/applications/{app_id}/runs/{run.run_id}")).json()
    assert (detail["status"], detail["input"], detail["attempts"]) == (
        "SUCCEEDED",
        {"name": "Ada"},
        1,
    )


async def test_repeated_terminal_event_is_recorded_once(
    app: tuple[str, str], nc: Client, registry: Stack, mongo: Database
) -> None:
    app_id, _ = app
    run = Run(app_id, "wk1")
    await publish(nc, registry.prefix, *run.all())
    first = await record(mongo, run.run_id, Status.SUCCEEDED)
    # a redelivered run finishing again (different output, later) changes nothing, in a
    # later batch or in the same one as a second terminal event
    await publish(nc, registry.prefix, run.succeeded(b'"again"', 9))
    late = Run(app_id, "wk1")
    await publish(nc, registry.prefix, *late.all(), late.succeeded(b'"again"', 9), run.failed())
    await record(mongo, late.run_id, Status.SUCCEEDED)
    await _settled(nc, registry)
    assert await mongo["runs"].find_one({"_id": run.run_id}) == first
    doc = await mongo["runs"].find_one({"_id": late.run_id})
    assert doc is not None and (doc["output"], doc["finished_at"]) == (
        '"Hello Ada"',
        "2026-01-31T12:00:02.000000Z",
    )
    assert await mongo["runs"].count_documents({"_id": run.run_id}) == 1


async def test_undecodable_event_is_dropped(
    app: tuple[str, str], nc: Client, registry: Stack, mongo: Database
) -> None:
    app_id, _ = app
    names = Names(registry.prefix)
    await nc.jetstream().publish(names.events(app_id, "wk1", "garbage"), b"{not json")
    await nc.jetstream().publish(names.events(app_id, "wk1", "wrong"), b'{"kind": "queued"}')
    run = Run(app_id, "wk1")
    await publish(nc, registry.prefix, *run.all())
    await record(mongo, run.run_id, Status.SUCCEEDED)
    await _settled(nc, registry)  # nothing left pending: the bad events were terminated


async def test_run_list_filters_and_pages(
    admin: httpx.AsyncClient, app: tuple[str, str], nc: Client, registry: Stack, mongo: Database
) -> None:
    app_id, _ = app
    other_app = await admin.post("/v1/applications", json={"name": "other"})
    runs = []
    for i in range(7):
        run = Run(app_id, "wk-a" if i % 2 == 0 else "wk-b")
        runs.append(run)
        events: list[Any] = [run.queued()] if i == 6 else [run.queued(), run.started()]
        if i < 4:
            events.append(run.succeeded() if i != 1 else run.failed())
        await publish(nc, registry.prefix, *events)
    foreign = Run(other_app.json()["id"], "wk-a")
    await publish(nc, registry.prefix, *foreign.all())
    for run in [*runs, foreign]:
        await record(mongo, run.run_id)
    await _settled(nc, registry)
    newest_first = [r.run_id for r in reversed(runs)]
    base = f"/v1/applications/{app_id}/runs"

    page = (await admin.get(base)).json()
    assert [i["run_id"] for i in page["items"]] == newest_first
    assert page["next_cursor"] is None
    assert set(page["items"][0]) == {
        "run_id",
        "worklet_id",
        "version",
        "trigger",
        "status",
        "latency_ms",
        "parent_run_id",
        "schedule_id",
        "queued_at",
        "started_at",
        "finished_at",
    }

    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await admin.get(base, params=params)).json()
        seen += [i["run_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(page["items"]) == 3 and cursor == page["items"][-1]["run_id"]
    assert seen == newest_first

    by_worklet = (await admin.get(base, params={"worklet_id": "wk-b"})).json()["items"]
    assert [i["run_id"] for i in by_worklet] == [runs[i].run_id for i in (5, 3, 1)]
    statuses = {
        s: [i["run_id"] for i in (await admin.get(base, params={"status": s})).json()["items"]]
        for s in ("QUEUED", "RUNNING", "SUCCEEDED", "FAILED")
    }
    assert statuses == {
        "QUEUED": [runs[6].run_id],
        "RUNNING": [runs[5].run_id, runs[4].run_id],
        "SUCCEEDED": [runs[3].run_id, runs[2].run_id, runs[0].run_id],
        "FAILED": [runs[1].run_id],
    }
    both = (await admin.get(base, params={"worklet_id": "wk-a", "status": "RUNNING"})).json()
    assert [i["run_id"] for i in both["items"]] == [runs[4].run_id]

    # another application's runs are not listed, and not readable here
    assert foreign.run_id not in seen
    assert_error(await admin.get(f"{base}/{foreign.run_id}"), 404, "not_found")
    assert_error(await admin.get(f"{base}/{new_run_id()}"), 404, "not_found")
    assert_error(await admin.get(base, params={"status": "DONE"}), 422, "invalid_request")
    assert_error(await admin.get(base, params={"limit": 201}), 422, "invalid_request")
    assert len((await admin.get(base, params={"limit": 200})).json()["items"]) == 7


async def test_runs_get_answers_the_gateway(
    app: tuple[str, str], nc: Client, registry: Stack, mongo: Database
) -> None:
    app_id, _ = app
    names = Names(registry.prefix)
    done, failed, queued = Run(app_id, "wk1"), Run(app_id, "wk1"), Run(app_id, "wk2")
    await publish(
        nc, registry.prefix, *done.all(), *failed.all()[:2], failed.failed(), queued.queued()
    )
    for run in (done, failed, queued):
        await record(mongo, run.run_id)

    async def ask(run_id: str, worklet_id: str = "wk1", app_ref: str = app_id) -> Any:
        lookup = RunLookup(app_id=app_ref, worklet_id=worklet_id, run_id=run_id)
        return await nc.request(names.registry_runs_get, encoder.encode(lookup), timeout=5)

    answer = msgspec.json.decode((await ask(done.run_id)).data, type=RunState)
    assert answer == RunState(
        run_id=done.run_id,
        app_id=app_id,
        worklet_id="wk1",
        status=Status.SUCCEEDED,
        output=Raw(b'"Hello Ada"'),
        latency_ms=1000,
    )
    answer = msgspec.json.decode((await ask(failed.run_id)).data, type=RunState)
    assert answer.status is Status.FAILED and answer.error is not None
    assert answer.error.type == "ZeroDivisionError"
    answer = msgspec.json.decode((await ask(queued.run_id, "wk2")).data, type=RunState)
    assert (answer.status, answer.latency_ms) == (Status.QUEUED, None)

    for run_id, worklet_id, app_ref in (
        (new_run_id(), "wk1", app_id),  # no such run
        (done.run_id, "wk2", app_id),  # another worklet
        (done.run_id, "wk1", new_id()),  # another application
    ):
        reply = await ask(run_id, worklet_id, app_ref)
        assert reply.data == b""
        assert reply.headers == {ERROR_HEADER: "not_found"}
    bad = await nc.request(names.registry_runs_get, b"{}", timeout=5)
    assert bad.headers == {ERROR_HEADER: "invalid_request"}


async def _settled(nc: Client, registry: Stack) -> None:
    """Wait until the registry consumer has acknowledged every event of the stream."""
    names = Names(registry.prefix)
    js = nc.jetstream()

    async def drained() -> bool:
        info = await js.consumer_info(names.events_stream, "registry")
        stream = await js.stream_info(names.events_stream)
        return bool(
            info.num_pending == 0
            and info.num_ack_pending == 0
            and info.ack_floor.stream_seq == stream.state.last_seq
        )

    await eventually(drained, "the registry to acknowledge every event")
