"""Several scheduler replicas, crashes and restarts: each slot is one run, none is lost."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import msgspec
import pytest
from nats.aio.client import Client

from services.common.ids import slot_run_id
from services.scheduler.firing import last_fired_bucket
from shared.settings import SchedulerSettings
from shared.subjects import Names
from tests.scheduler.support import (
    Scene,
    expected_slots,
    now,
    schedule_entry,
    slot_of,
    until,
    whole_second,
)

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

ECHO = "def main(block_input):\n    return block_input\n"
SECOND = timedelta(seconds=1)


async def test_three_replicas_fire_every_slot_once_and_survive_a_kill(world: Scene) -> None:
    worklet = await world.code("tick", ECHO)
    replicas = await asyncio.gather(
        *(world.scheduler(f"replica-{i}-{world.app_id}") for i in range(3))
    )
    entry = await world.put(schedule_entry(world.app_id, worklet, every="1s", input="tick"))
    sid = entry.schedule_id
    await world.recorder.until(lambda: bool(world.recorder.queued(sid)), "the first firing")
    first = world.recorder.fired_slots(sid)[0]

    await until(first + 10 * SECOND)  # three replicas for ten seconds
    killed_at = now()
    replicas[0].kill()  # SIGKILL
    assert replicas[0].popen.wait(timeout=10) != 0
    await until(killed_at + 4 * SECOND)
    await world.delete(entry)
    last = whole_second(now()) - SECOND  # fired by now (fired within ms of their slot)
    await world.recorder.until(
        lambda: (
            bool(world.recorder.fired_slots(sid)) and world.recorder.fired_slots(sid)[-1] >= last
        ),
        "the slots up to the deletion",
    )

    fired = world.recorder.fired_slots(sid)
    assert len(fired) >= 13
    # one queued event per slot in the stream, consecutive: no duplicate and no gap, through
    # the kill (the two other replicas fire every slot)
    assert fired == expected_slots(first, fired[-1], SECOND), fired
    queued = world.recorder.queued(sid)
    assert len({q.run_id for q in queued}) == len(queued)
    for q in queued:
        assert q.run_id == slot_run_id(sid, slot_of(q.run_id))
        assert q.at - slot_of(q.run_id) < 2 * SECOND  # on time, none late by the misfire grace
    # and each slot ran exactly once
    run_ids = [q.run_id for q in queued]
    await world.recorder.until(
        lambda: all(world.recorder.end(r) is not None for r in run_ids), "every run's end"
    )
    for run_id in run_ids:
        world.recorder.succeeded(run_id)
    assert all(p.alive() for p in replicas[1:])


async def test_a_scheduler_restarted_within_the_grace_fires_the_missed_slot_once(
    world: Scene,
) -> None:
    worklet = await world.code("tock", ECHO)
    name = f"restarted-{world.app_id}"
    proc = await world.scheduler(name)
    every = 5 * SECOND  # room for a process start between the missed slot and the next
    soon = whole_second(now()) + SECOND  # the first slot
    entry = schedule_entry(world.app_id, worklet, every="5s", input="tock", anchor=soon)
    await world.put(entry)
    sid = entry.schedule_id
    await world.recorder.until(lambda: bool(world.recorder.queued(sid)), "the first firing")
    [first] = world.recorder.queued(sid)
    await world.recorder.until(lambda: world.recorder.end(first.run_id) is not None, "its end")
    proc.kill()  # SIGKILL, between two slots
    proc.popen.wait(timeout=10)
    fired = slot_of(first.run_id)
    missed = fired + every
    assert now() < missed, "the first run took too long for this test"

    await until(missed + 0.5 * SECOND)
    assert world.recorder.fired_slots(sid)[-1] == fired  # nobody fired the missed slot
    await world.scheduler(name)  # the same replica, back within the misfire grace (60 s)

    await world.recorder.until(
        lambda: missed in world.recorder.fired_slots(sid), "the missed slot", timeout=10
    )
    [late] = [q for q in world.recorder.queued(sid) if slot_of(q.run_id) == missed]
    assert late.run_id == slot_run_id(sid, missed)
    assert late.at - missed > 0.5 * SECOND  # fired late, on start
    await world.recorder.until(
        lambda: missed + every in world.recorder.fired_slots(sid), "the next slot", timeout=10
    )
    await world.delete(entry)
    [on_time] = [q for q in world.recorder.queued(sid) if slot_of(q.run_id) == missed + every]
    assert on_time.at - (missed + every) < SECOND
    assert world.recorder.fired_slots(sid) == [fired, missed, missed + every]
    await world.recorder.until(lambda: world.recorder.end(late.run_id) is not None, "its end")
    world.recorder.succeeded(late.run_id)


async def test_a_slot_claimed_by_a_replica_that_died_is_published(world: Scene, nc: Client) -> None:
    """A replica claims a slot (``last.{schedule}``) before publishing it; if it dies in
    between, the next scheduler to look publishes the claimed run while it is recent."""
    worklet = await world.code("claimed", ECHO)
    anchor = whole_second(now()) - 15 * SECOND
    every = 10 * SECOND
    entry = schedule_entry(
        world.app_id, worklet, every="10s", input="claimed", anchor=anchor, overlap="allow"
    )
    entry = msgspec.structs.replace(entry, updated_at=anchor - SECOND)
    sid = entry.schedule_id
    claimed = slot_run_id(sid, anchor)
    settings = SchedulerSettings(nats_url=world.stack.servers.nats_url, prefix=world.stack.prefix)
    bucket = await last_fired_bucket(nc, settings)
    await bucket.put(Names.last_fired(sid), claimed.encode())  # and nothing published
    await world.put(entry)

    await world.scheduler()  # fires the latest missed slot, and finds the claim unpublished
    rec = world.recorder
    await rec.until(lambda: anchor in rec.fired_slots(sid), "the claimed slot's run")
    await rec.until(lambda: anchor + 2 * every in rec.fired_slots(sid), "the next slot", 15)
    await world.delete(entry)
    assert rec.fired_slots(sid) == [anchor, anchor + every, anchor + 2 * every]
    run_ids = [q.run_id for q in rec.queued(sid)]
    assert claimed in run_ids
    await rec.until(lambda: all(rec.end(r) is not None for r in run_ids), "the runs' ends")
    for run_id in run_ids:
        rec.succeeded(run_id)
