"""The APScheduler side alone (no server): jobs follow entries, and each firing gets its slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import msgspec
import pytest

from services.scheduler.timetable import Timetable
from shared.schemas import ScheduleEntry
from tests.scheduler.support import edited, now, schedule_entry, whole_second

SECOND = timedelta(seconds=1)
KEY = "schedule.app.w"


class Fired:
    def __init__(self) -> None:
        self.slots: list[tuple[str, datetime]] = []
        self.at: list[datetime] = []  # when each firing ran
        self.changed = asyncio.Event()

    async def __call__(self, entry: ScheduleEntry, slot: datetime) -> None:
        self.slots.append((entry.schedule_id, slot))
        self.at.append(now())
        self.changed.set()

    async def until(self, count: int, timeout: float = 3) -> None:
        async with asyncio.timeout(timeout):
            while len(self.slots) < count:
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def fired() -> Fired:
    return Fired()


@pytest.fixture
async def timetable(fired: Fired) -> AsyncIterator[Timetable]:
    t = Timetable(fired, misfire_grace=60)
    t.start()
    try:
        yield t
    finally:
        await t.stop(1)


async def test_a_firing_gets_its_slot_not_the_time_it_runs(
    timetable: Timetable, fired: Fired
) -> None:
    entry = schedule_entry("app", "w", every="1s", anchor=whole_second(now()) + SECOND)
    timetable.put(KEY, entry)
    await fired.until(2)
    (_, first), (_, second) = fired.slots[:2]
    assert first == entry.anchor and second == entry.anchor + SECOND
    assert all(
        timedelta(0) < at - slot < SECOND
        for (_, slot), at in zip(fired.slots, fired.at, strict=True)
    )


async def test_a_missed_slot_within_the_grace_fires_once_at_start(
    timetable: Timetable, fired: Fired
) -> None:
    anchor = whole_second(now()) - 25 * SECOND
    entry = schedule_entry("app", "w", every="10s", anchor=anchor)
    timetable.put(KEY, msgspec.structs.replace(entry, updated_at=anchor))
    await fired.until(1)
    assert fired.slots == [(entry.schedule_id, anchor + 20 * SECOND)]  # the latest, coalesced
    with pytest.raises(TimeoutError):  # and only that one (the next slot is 5 s away)
        await fired.until(2, timeout=1)


async def test_one_off_slots_older_than_the_grace_are_dropped(
    timetable: Timetable, fired: Fired
) -> None:
    recent = schedule_entry("app", "w", at=now() - 10 * SECOND)
    recent = msgspec.structs.replace(recent, updated_at=now() - 20 * SECOND)
    timetable.put(KEY, recent)
    await fired.until(1)
    assert fired.slots == [(recent.schedule_id, recent.spec.at)]

    old = schedule_entry("app", "w2", at=now() - 120 * SECOND)
    old = msgspec.structs.replace(old, updated_at=now() - 200 * SECOND)
    timetable.put("schedule.app.w2", old)
    assert len(timetable) == 1  # only the first


async def test_disabling_removes_the_job_and_the_same_entry_again_changes_nothing(
    timetable: Timetable, fired: Fired
) -> None:
    entry = schedule_entry("app", "w", every="1h")
    timetable.put(KEY, entry)
    job = timetable.job(KEY)
    timetable.put(KEY, msgspec.structs.replace(entry))  # an equal entry: the job is kept
    assert timetable.job(KEY) is job
    timetable.put(KEY, edited(entry, enabled=False))
    assert timetable.job(KEY) is None and len(timetable) == 0
    timetable.put(KEY, edited(entry, enabled=True))
    assert timetable.job(KEY) is not None
    timetable.delete(KEY)
    assert timetable.job(KEY) is None and len(timetable) == 0
    assert fired.slots == []
