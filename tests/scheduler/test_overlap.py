"""``overlap``: a worklet slower than its schedule either skips slots or overlaps itself."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

import pytest

from tests.scheduler.support import Scene, expected_slots, schedule_entry, slot_of

pytestmark = pytest.mark.integration

SECOND = timedelta(seconds=1)


def slow(seconds: float) -> str:
    return f"import time\n\ndef main():\n    time.sleep({seconds})\n    return 'done'\n"


async def test_skip_never_overlaps_and_records_each_skipped_slot(world: Scene) -> None:
    skipping = await world.code("slow-skip", slow(2.5))
    allowing = await world.code("slow-allow", slow(1.5))
    await world.scheduler()
    skip = await world.put(schedule_entry(world.app_id, skipping, every="1s"))  # overlap: skip
    allow = await world.put(schedule_entry(world.app_id, allowing, every="1s", overlap="allow"))
    rec = world.recorder

    def decided(schedule_id: str) -> list[str]:
        return [e.run_id for e in [*rec.queued(schedule_id), *rec.skipped(schedule_id)]]

    await rec.until(lambda: len(decided(skip.schedule_id)) >= 8, "eight slots decided", 15)
    await asyncio.gather(world.delete(skip), world.delete(allow))

    # every slot was either fired or skipped, never both, none lost
    fired = {q.run_id for q in rec.queued(skip.schedule_id)}
    skipped = {c.run_id for c in rec.skipped(skip.schedule_id)}
    assert not fired & skipped
    slots = sorted(slot_of(run_id) for run_id in fired | skipped)
    assert slots == expected_slots(slots[0], slots[-1], SECOND)
    assert len(fired) >= 2 and len(skipped) >= 4, (fired, skipped)

    # the fired runs never overlapped
    await rec.until(lambda: all(rec.end(r) is not None for r in fired), "the fired runs' ends")
    intervals = sorted(rec.interval(run_id) for run_id in fired)
    for (_, ended), (started, _) in itertools.pairwise(intervals):
        assert ended <= started, intervals
    for run_id in fired:
        rec.succeeded(run_id)

    # each skip is a CANCELLED run, OverlapSkipped, naming the run still running
    for cancelled in rec.skipped(skip.schedule_id):
        assert cancelled.trigger == "schedule" and "still running" in cancelled.error.message
        assert any(run_id in cancelled.error.message for run_id in fired)
    records = await world.records(sorted(skipped), lambda r: r["status"] == "CANCELLED")
    for record in records:
        assert record["trigger"] == "schedule" and record["schedule_id"] == skip.schedule_id
        assert record["error"]["type"] == "OverlapSkipped"

    # `allow` fired every slot, and its runs overlapped
    allowed = sorted(q.run_id for q in rec.queued(allow.schedule_id))
    assert not rec.skipped(allow.schedule_id)
    allowed_slots = [slot_of(run_id) for run_id in allowed]
    assert allowed_slots == expected_slots(allowed_slots[0], allowed_slots[-1], SECOND)
    await rec.until(lambda: all(rec.end(r) is not None for r in allowed), "the allowed runs' ends")
    spans = sorted(rec.interval(run_id) for run_id in allowed)
    assert any(b_start < a_end for (_, a_end), (b_start, _) in itertools.pairwise(spans))
