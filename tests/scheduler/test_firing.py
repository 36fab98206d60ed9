"""Schedules fire runs: on time, with their input and limits, seen like any other run."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import msgspec
import pytest

from services.common.ids import slot_run_id
from tests.scheduler.support import Scene, expected_slots, now, schedule_entry, slot_of, until

pytestmark = pytest.mark.integration

ECHO = "def main(block_input):\n    return {'echo': block_input}\n"
SECOND = timedelta(seconds=1)


async def test_every_second_fires_each_second_with_its_input(world: Scene) -> None:
    worklet = await world.code("echo", ECHO)
    await world.scheduler()
    entry = await world.put(schedule_entry(world.app_id, worklet, every="1s", input={"n": 42}))
    sid = entry.schedule_id

    await world.recorder.until(lambda: bool(world.recorder.queued(sid)), "the first firing")
    started = now()
    seconds = 5
    await until(started + seconds * SECOND)
    arrived = [
        q for q in world.recorder.queued(sid) if started <= q.at < started + seconds * SECOND
    ]
    assert seconds - 1 <= len(arrived) <= seconds + 1, [q.at for q in world.recorder.queued(sid)]

    await world.delete(entry)
    fired = world.recorder.fired_slots(sid)
    # consecutive slots on the anchor's whole seconds, each fired once and on time
    assert fired == expected_slots(fired[0], fired[-1], SECOND)
    assert all(slot.microsecond == 0 for slot in fired)
    for queued in world.recorder.queued(sid):
        slot = slot_of(queued.run_id)
        assert queued.run_id == slot_run_id(sid, slot)
        assert timedelta(0) <= queued.at - slot < SECOND
        assert queued.trigger == "schedule" and queued.schedule_id == sid
        assert msgspec.json.decode(queued.input) == {"n": 42}
        assert queued.background and queued.timeout == 3600  # WORKLETS_BACKGROUND_TIMEOUT

    # each run succeeds with the schedule's input, and is recorded like any other run
    run_ids = [q.run_id for q in world.recorder.queued(sid)]
    await world.recorder.until(
        lambda: all(world.recorder.end(r) is not None for r in run_ids), "the runs' ends"
    )
    for run_id in run_ids:
        output = msgspec.json.decode(world.recorder.succeeded(run_id).output)
        assert output == {"echo": {"n": 42}}
    records = await world.records(run_ids, lambda r: r["status"] == "SUCCEEDED")
    for record in records:
        assert record["trigger"] == "schedule" and record["schedule_id"] == sid
        assert record["input"] == {"n": 42} and record["worklet_output"] == {"echo": {"n": 42}}
    async with world.http() as http:
        listed = await http.get(
            f"/v1/applications/{world.app_id}/runs", params={"worklet_id": worklet, "limit": 200}
        )
    assert set(run_ids) <= {item["run_id"] for item in listed.json()["items"]}


async def test_a_scheduled_wrapper_gives_the_original_worklet_its_input(world: Scene) -> None:
    """The seed's pattern: to schedule a worklet that also serves API calls with their own
    input, schedule a wrapper whose code block makes the input and whose worklet block calls
    the original."""
    original = await world.code(
        "greet", "def main(block_input):\n    return {'greeting': 'hello ' + block_input['name']}\n"
    )
    wrapper = await world.deploy(
        {
            "name": "greet-nightly",
            "blocks": [
                {
                    "id": "make_input",
                    "type": "code",
                    "source": "def main():\n    return {'name': 'scheduler'}\n",
                    "next": "call",
                },
                {"id": "call", "type": "worklet", "worklet": "greet"},
            ],
        }
    )
    await world.scheduler()
    entry = await world.put(schedule_entry(world.app_id, wrapper, every="1s"))
    rec = world.recorder

    def ended(run_id: str) -> bool:
        return rec.end(run_id) is not None

    def finished() -> list[str]:
        return [q.run_id for q in rec.queued(entry.schedule_id) if rec.end(q.run_id) is not None]

    await rec.until(lambda: len(finished()) >= 2, "two wrapper runs")
    await world.delete(entry)
    for run_id in finished()[:2]:
        wrapped = rec.succeeded(run_id)
        assert msgspec.json.decode(wrapped.output) == {"greeting": "hello scheduler"}
        [child] = rec.children(run_id)
        await rec.until(partial(ended, child), "the child's end")
        end = rec.succeeded(child)
        assert end.worklet_id == original and end.trigger == "worklet"
        assert msgspec.json.decode(end.output) == {"greeting": "hello scheduler"}
