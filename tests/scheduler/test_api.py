"""End to end through the registry's schedule API: PUT, edit, GET, DELETE."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import msgspec
import pytest

from tests.scheduler.support import Scene, now, slot_of

pytestmark = pytest.mark.integration

ECHO = "def main(block_input):\n    return block_input\n"
SECOND = timedelta(seconds=1)


async def test_a_schedule_managed_through_the_api_fires_follows_edits_and_stops(
    world: Scene,
) -> None:
    worklet = await world.code("api-echo", ECHO)
    await world.scheduler()
    rec = world.recorder
    path = f"/v1/applications/{world.app_id}/worklets/{worklet}/schedule"

    async with world.http() as http:
        created = await http.put(path, json={"every": "1s", "input": {"via": "api"}})
        assert created.status_code == 201, created.text
        sid = created.json()["schedule_id"]
        assert created.json()["next_fire_times"]

        await rec.until(lambda: len(rec.queued(sid)) >= 2, "two firings")
        first = rec.queued(sid)[0]
        assert msgspec.json.decode(first.input) == {"via": "api"}
        await rec.until(lambda: rec.end(first.run_id) is not None, "the first run's end")
        assert msgspec.json.decode(rec.succeeded(first.run_id).output) == {"via": "api"}

        edited = await http.put(path, json={"every": "1s", "input": {"via": "edit"}})
        assert edited.status_code == 200, edited.text
        assert edited.json()["schedule_id"] == sid
        changed = now()

        def after_edit() -> list[object]:
            return [
                msgspec.json.decode(q.input)
                for q in rec.queued(sid)
                if slot_of(q.run_id) > changed + SECOND
            ]

        await rec.until(lambda: bool(after_edit()), "a firing after the edit")
        assert all(value == {"via": "edit"} for value in after_edit())

        async with asyncio.timeout(10):  # the registry records runs a moment after they end
            while (shown := (await http.get(path)).json())["last_run"] is None:
                await asyncio.sleep(0.2)
        assert shown["last_run"]["run_id"] in {q.run_id for q in rec.queued(sid)}
        assert shown["skipped"] == 0 and shown["next_fire_times"]

        gone = await http.delete(path)
        assert gone.status_code == 204, gone.text
        deleted = now()
        await rec.nothing(lambda: any(s > deleted + SECOND for s in rec.fired_slots(sid)), 2.5)

    records = await world.records(
        [q.run_id for q in rec.queued(sid)], lambda r: r["status"] == "SUCCEEDED"
    )
    assert {r["schedule_id"] for r in records} == {sid}
    assert {r["trigger"] for r in records} == {"schedule"}
