"""Changes to a schedule, or to its worklet, take effect within a second, without a restart."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import nats
import pytest
from nats.aio.msg import Msg

from cli.servers import free_port, start_nats
from services.common.bus import index_bucket
from shared.schemas import RunQueued, WorkletHead, encoder, event_decoder
from shared.settings import CommonSettings
from shared.subjects import Names
from tests.scheduler.support import Scene, edited, now, schedule_entry, slot_of
from tests.stack import Servers, Stack

pytestmark = pytest.mark.integration

ECHO = "def main(block_input):\n    return block_input\n"
SECOND = timedelta(seconds=1)


async def test_editing_disabling_and_deleting_take_effect_within_a_second(world: Scene) -> None:
    worklet = await world.code("edited", ECHO)
    await world.scheduler()
    entry = await world.put(schedule_entry(world.app_id, worklet, every="1s", input={"v": 1}))
    sid = entry.schedule_id
    rec = world.recorder

    def inputs_after(moment: datetime) -> list[object]:
        return [msgspec.json.decode(q.input) for q in rec.queued(sid) if q.at > moment]

    await rec.until(lambda: {"v": 1} in inputs_after(entry.updated_at), "a firing with v=1")

    # edit: new input and cadence
    entry = await world.put(edited(entry, input={"v": 2}, every="2s"))
    changed = entry.updated_at
    await rec.until(lambda: len(inputs_after(changed + SECOND)) >= 2, "two firings after the edit")
    old = [q for q in rec.queued(sid) if msgspec.json.decode(q.input) == {"v": 1}]
    new = [q for q in rec.queued(sid) if msgspec.json.decode(q.input) == {"v": 2}]
    assert len(old) + len(new) == len(rec.queued(sid))
    assert all(slot_of(q.run_id) <= changed + SECOND for q in old)
    slots = [slot_of(q.run_id) for q in new]
    assert changed < slots[0] <= changed + 2 * SECOND  # the new cadence's first slot
    assert all(b - a == 2 * SECOND for a, b in itertools.pairwise(slots)), slots

    # disable: nothing fires a second after
    entry = await world.put(edited(entry, enabled=False, every="1s"))
    disabled = entry.updated_at
    await rec.nothing(lambda: any(s > disabled + SECOND for s in rec.fired_slots(sid)), 2.5)

    # enable again: firing resumes within a second, from the change on
    entry = await world.put(edited(entry, enabled=True))
    enabled = entry.updated_at
    await rec.until(lambda: any(s > enabled for s in rec.fired_slots(sid)), "a firing", 3)
    resumed = min(s for s in rec.fired_slots(sid) if s > disabled)
    assert enabled < resumed <= enabled + SECOND

    # delete: nothing fires a second after
    await world.delete(entry)
    deleted = now()
    await rec.nothing(lambda: any(s > deleted + SECOND for s in rec.fired_slots(sid)), 2.5)


async def test_run_limits_come_from_the_worklet_and_a_deleted_worklet_is_skipped(
    world: Scene,
) -> None:
    worklet = await world.code("limited", ECHO, timeout=7, background_timeout=900)
    proc = await world.scheduler()
    entry = await world.put(schedule_entry(world.app_id, worklet, every="1s"))
    sid = entry.schedule_id
    rec = world.recorder

    # background (the default): the worklet's background limit, past the synchronous one
    await rec.until(lambda: bool(rec.queued(sid)), "a background firing")
    assert rec.queued(sid)[-1].background and rec.queued(sid)[-1].timeout == 900

    # not background: the worklet's own timeout
    entry = await world.put(edited(entry, background=False))
    await rec.until(
        lambda: any(not q.background and q.at > entry.updated_at for q in rec.queued(sid)),
        "a foreground firing",
    )
    foreground = [q for q in rec.queued(sid) if not q.background]
    assert all(q.timeout == 7 for q in foreground)
    await rec.until(lambda: rec.end(foreground[0].run_id) is not None, "its end")
    rec.succeeded(foreground[0].run_id)

    # the worklet goes (its schedule entry stays, as written straight into the read model):
    # its slots are skipped with a warning
    async with world.http() as http:
        gone = await http.delete(f"/v1/applications/{world.app_id}/worklets/{worklet}")
    assert gone.status_code == 204, gone.text
    deleted = now()
    await rec.nothing(lambda: any(s > deleted + SECOND for s in rec.fired_slots(sid)), 2.5)
    assert "no longer exists" in proc.log_tail(200)
    await world.delete(entry)


async def test_changes_are_followed_through_a_nats_server_restart(tmp_path: Path) -> None:
    """The watchers live on the server: after it restarts the scheduler watches again at
    once, rather than when nats-py notices the missed heartbeats seconds later."""
    port = free_port()
    nats_server = start_nats(tmp_path / "nats", port)
    url = f"nats://127.0.0.1:{port}"
    servers = Servers(nats_url=url, mongo_url="mongodb://unused", root=tmp_path)
    queued: list[RunQueued] = []
    arrived = asyncio.Event()

    async def on_event(msg: Msg) -> None:
        event = event_decoder.decode(msg.data)
        if isinstance(event, RunQueued):
            queued.append(event)
            arrived.set()

    async def inputs_after(moment: datetime, count: int) -> list[object]:
        async with asyncio.timeout(5):
            while len(found := [q for q in queued if slot_of(q.run_id) > moment]) < count:
                arrived.clear()
                await arrived.wait()
        return [msgspec.json.decode(q.input) for q in found]

    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        with Stack(servers, tmp_path) as stack:
            kv = await index_bucket(
                nc.jetstream(), CommonSettings(nats_url=url, prefix=stack.prefix)
            )
            head = WorkletHead(app_id="app", worklet_id="w", name="w", version=1)
            await kv.put(Names.worklet_head("app", "w"), encoder.encode(head))
            await nc.subscribe(stack.names.events_all, cb=on_event)
            await asyncio.to_thread(stack.start, "scheduler")
            entry = schedule_entry("app", "w", every="1s", input=1, overlap="allow")
            await kv.put(Names.schedule("app", "w"), encoder.encode(entry))
            assert await inputs_after(entry.updated_at, 1) == [1]

            nats_server.stop()
            nats_server = start_nats(tmp_path / "nats", port)  # same port, same data
            entry = edited(entry, input=2)
            async with asyncio.timeout(15):  # until JetStream is back and takes the edit
                while True:
                    try:
                        await kv.put(Names.schedule("app", "w"), encoder.encode(entry))
                        break
                    except (nats.errors.Error, TimeoutError):
                        await asyncio.sleep(0.1)
            entry = msgspec.structs.replace(entry, updated_at=now())
            assert await inputs_after(entry.updated_at + SECOND, 2) == [2, 2]
            assert stack.processes["scheduler"].alive()
    finally:
        await nc.close()
        nats_server.stop()
