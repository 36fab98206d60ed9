"""Next fire times: cron in time zones across daylight-saving changes, intervals on the anchor.

Every replica computes the slots on its own, from whatever moment it (re)started, so the
property that matters most is agreement: the first slot at or after any moment is the one
a replica running all along would fire then. These tests need no server.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from services.common.bus import DUPLICATE_WINDOW
from services.common.ids import run_time, slot_run_id
from services.common.schedules import ScheduleError, next_fire_times, trigger, validate
from shared.schemas import ScheduleEntry, ScheduleSpec
from shared.settings import SchedulerSettings

PARIS = "Europe/Paris"  # 2026: forward 2026-03-29 01:00Z, back 2026-10-25 01:00Z
NEW_YORK = "America/New_York"  # 2026: forward 2026-03-08 07:00Z, back 2026-11-01 06:00Z
HOUR = timedelta(hours=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def entry(tz: str = "UTC", anchor: datetime | None = None, **spec: str) -> ScheduleEntry:
    moment = anchor or utc(2026, 1, 1)
    return ScheduleEntry(
        schedule_id="s1",
        app_id="a1",
        worklet_id="w1",
        spec=ScheduleSpec(timezone=tz, **spec),  # type: ignore[arg-type]
        anchor=moment,
        updated_at=moment,
    )


def chain(schedule: ScheduleEntry, start: datetime, end: datetime) -> list[datetime]:
    """The slots in [start, end) as a scheduler running all along fires them (each from the
    previous one, ``now`` a few milliseconds after it), in UTC."""
    source = trigger(schedule)
    slots: list[datetime] = []
    fire = source.get_next_fire_time(None, start)
    while fire is not None and fire < end:
        slots.append(fire.astimezone(UTC))
        fire = source.get_next_fire_time(fire, fire.astimezone(UTC) + timedelta(milliseconds=5))
    return slots


def first_from(schedule: ScheduleEntry, moment: datetime) -> datetime:
    """The first slot at or after ``moment``, as a replica starting then computes it."""
    fire: datetime | None = trigger(schedule).get_next_fire_time(None, moment)
    assert fire is not None
    return fire.astimezone(UTC)


def local(slots: list[datetime], tz: str) -> list[tuple[date, str]]:
    return [
        (s.astimezone(ZoneInfo(tz)).date(), s.astimezone(ZoneInfo(tz)).strftime("%H:%M"))
        for s in slots
    ]


# ---------------------------------------------------------------- fixed-hour crons


def test_a_fixed_hour_in_the_skipped_hour_fires_once_an_hour_later_on_the_wall_clock() -> None:
    daily = entry(PARIS, cron="30 2 * * *")
    slots = chain(daily, utc(2026, 3, 27), utc(2026, 4, 1))
    assert slots == [
        utc(2026, 3, 27, 1, 30),  # 02:30 CET
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1, 30),  # 02:30 does not exist: the same instant as 03:30 CEST
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
        utc(2026, 3, 31, 0, 30),
    ]
    assert local(slots, PARIS)[2] == (date(2026, 3, 29), "03:30")

    daily = entry(NEW_YORK, cron="30 2 * * *")
    slots = chain(daily, utc(2026, 3, 7), utc(2026, 3, 10))
    assert slots == [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)]
    assert [t for _, t in local(slots, NEW_YORK)] == ["02:30", "03:30", "02:30"]


def test_a_fixed_hour_in_the_repeated_hour_fires_on_its_first_occurrence_only() -> None:
    daily = entry(PARIS, cron="30 2 * * *")
    slots = chain(daily, utc(2026, 10, 24), utc(2026, 10, 27))
    # 02:30 happens twice on the 25th (00:30Z in CEST, then 01:30Z in CET): only the first
    assert slots == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]

    daily = entry(NEW_YORK, cron="30 1 * * *")
    slots = chain(daily, utc(2026, 10, 31), utc(2026, 11, 3))
    assert slots == [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


@pytest.mark.parametrize("tz", [PARIS, NEW_YORK])
@pytest.mark.parametrize("cron", ["0 0 * * *", "30 2 * * *", "15 1 * * *", "0 9 * * *"])
def test_a_daily_cron_fires_exactly_once_every_local_day_across_both_changes(
    tz: str, cron: str
) -> None:
    """APScheduler 3.11's own CronTrigger skips the first midnight after clocks go forward;
    the trigger the scheduler uses does not."""
    daily = entry(tz, cron=cron)
    for start in (utc(2026, 3, 1), utc(2026, 10, 15)):  # both zones' changes are within
        slots = chain(daily, start, start + timedelta(days=35))
        days = [day for day, _ in local(slots, tz)]
        assert len(days) >= 34
        assert days == [days[0] + timedelta(days=i) for i in range(len(days))], local(slots, tz)


@pytest.mark.parametrize(
    ("field", "weekdays"),
    [
        ("1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("0", ["Sun"]),
        ("7", ["Sun"]),
        ("6,0", ["Sat", "Sun"]),
        ("*/2", ["Sun", "Tue", "Thu", "Sat"]),
        ("mon-wed", ["Mon", "Tue", "Wed"]),
    ],
)
def test_days_of_the_week_are_numbered_as_crontab_numbers_them(
    field: str, weekdays: list[str]
) -> None:
    """APScheduler 3 counts from Monday; a schedule's cron counts from Sunday, as crontab."""
    weekly = entry(PARIS, cron=f"0 9 * * {field}")
    slots = chain(weekly, utc(2026, 6, 1), utc(2026, 6, 8))  # Monday 1 June to Sunday 7 June
    assert [s.astimezone(ZoneInfo(PARIS)).strftime("%a") for s in slots] == sorted(
        weekdays, key=["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].index
    )


@pytest.mark.parametrize(
    ("cron", "days"),
    [
        # both day fields restricted: either matches (1 Nov is a Sunday, Mondays 2, 9... 30)
        ("0 9 1 * 1", [1, 2, 9, 16, 23, 30]),
        ("0 9 1,15 * 5", [1, 6, 13, 15, 20, 27]),
        # one of them "*": the other alone decides
        ("0 9 * * 1", [2, 9, 16, 23, 30]),
        ("0 9 1,15 * *", [1, 15]),
        # a step from "*" counts as "*" (crontab's rule): both must match, odd days and Mondays
        ("0 9 */2 * 1", [9, 23]),
    ],
)
def test_day_of_month_or_day_of_week_as_crontab_combines_them(cron: str, days: list[int]) -> None:
    """APScheduler 3 wants both day fields to match; crontab fires on a day matching either
    when both are restricted."""
    monthly = entry(PARIS, cron=cron)
    slots = chain(monthly, utc(2026, 11, 1), utc(2026, 12, 1))
    assert [s.astimezone(ZoneInfo(PARIS)).day for s in slots] == days
    assert all(s.astimezone(ZoneInfo(PARIS)).hour == 9 for s in slots)


# ---------------------------------------------------------------- hourly and sub-hourly crons


@pytest.mark.parametrize("tz", [PARIS, NEW_YORK])
@pytest.mark.parametrize(("cron", "step"), [("0 * * * *", HOUR), ("*/30 * * * *", HOUR / 2)])
def test_hourly_crons_fire_by_real_time_through_both_changes(
    tz: str, cron: str, step: timedelta
) -> None:
    schedule = entry(tz, cron=cron)
    for start in (
        utc(2026, 3, 7, 12),
        utc(2026, 3, 28, 12),
        utc(2026, 10, 24, 12),
        utc(2026, 10, 31, 12),
    ):
        slots = chain(schedule, start, start + timedelta(days=2))
        gaps = {b - a for a, b in itertools.pairwise(slots)}
        assert gaps == {step}, [s.isoformat() for s in slots]


def test_the_day_of_the_change_has_23_or_25_hourly_slots() -> None:
    hourly = entry(PARIS, cron="0 * * * *")
    spring = chain(hourly, utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))  # local midnight to midnight
    autumn = chain(hourly, utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))
    assert (len(spring), len(autumn)) == (23, 25)
    # the repeated 02:00 fires in both offsets, the skipped one not at all
    assert [t for _, t in local(autumn, PARIS)].count("02:00") == 2
    assert "02:00" not in [t for _, t in local(spring, PARIS)]


# ---------------------------------------------------------------- replicas agree


@pytest.mark.parametrize("tz", [PARIS, NEW_YORK])
@pytest.mark.parametrize(
    "cron", ["30 2 * * *", "0 0 * * *", "0 * * * *", "*/30 * * * *", "15 1-3 * * *", "0 */2 * * *"]
)
def test_a_replica_starting_at_any_moment_agrees_with_one_running_all_along(
    tz: str, cron: str
) -> None:
    schedule = entry(tz, cron=cron)
    for change in (
        utc(2026, 3, 8, 7),
        utc(2026, 3, 29, 1),
        utc(2026, 10, 25, 1),
        utc(2026, 11, 1, 6),
    ):
        start, end = change - timedelta(hours=8), change + timedelta(hours=8)
        slots = chain(schedule, start, end + timedelta(days=1, hours=1))
        assert len(set(slots)) == len(slots)
        moment = start
        while moment < end:  # every 7 minutes: inside gaps, folds and exactly on slots too
            expected = next(s for s in slots if s >= moment)
            assert first_from(schedule, moment) == expected, moment.isoformat()
            assert first_from(schedule, expected) == expected
            moment += timedelta(minutes=7)


# ---------------------------------------------------------------- intervals


def test_interval_slots_are_aligned_on_the_anchor_whenever_they_are_computed() -> None:
    anchor = utc(2026, 5, 4, 12) + timedelta(microseconds=250_000)
    every = entry(anchor=anchor, every="90s")
    step = timedelta(seconds=90)
    for offset in (0, 1, 89.9, 90, 3600, 86_400 * 3 + 17.3):
        moment = anchor + timedelta(seconds=offset)
        fire = first_from(every, moment)
        assert (fire - anchor) % step == timedelta(0) and moment <= fire < moment + step
    # a replica running all along and one starting later fire the same slots
    slots = chain(every, anchor, anchor + timedelta(hours=6))
    late = chain(every, anchor + timedelta(hours=2, seconds=7), anchor + timedelta(hours=6))
    assert late == [s for s in slots if s >= late[0]] and len(late) == 4 * 40 - 1
    assert next_fire_times(every, anchor - timedelta(seconds=1), 3) == [
        anchor,
        anchor + step,
        anchor + 2 * step,
    ]


def test_intervals_count_real_time_across_a_change() -> None:
    hourly = entry(PARIS, anchor=utc(2026, 3, 29, 0, 15), every="1h")
    slots = chain(hourly, utc(2026, 3, 29), utc(2026, 3, 29, 4))
    assert slots == [utc(2026, 3, 29, h, 15) for h in range(4)]
    assert [t for _, t in local(slots, PARIS)] == ["01:15", "03:15", "04:15", "05:15"]


def test_a_disabled_schedule_has_no_slots() -> None:
    schedule = entry(every="1s")
    schedule.spec.enabled = False
    assert next_fire_times(schedule, utc(2026, 1, 2)) == []


# ---------------------------------------------------------------- slots and settings


def test_a_slots_run_id_tells_its_time() -> None:
    slot = utc(2026, 3, 29, 1, 30) + timedelta(microseconds=123_456)
    assert run_time(slot_run_id("s1", slot)) == slot.replace(microsecond=123_000)
    assert slot_run_id("s1", slot) != slot_run_id("s2", slot)
    assert slot_run_id("s1", slot) < slot_run_id("s1", slot + timedelta(seconds=1))


def test_the_misfire_grace_stays_within_the_duplicate_window() -> None:
    assert SchedulerSettings().misfire_grace == 60
    assert SchedulerSettings(misfire_grace=599).misfire_grace < DUPLICATE_WINDOW
    with pytest.raises(ValidationError):
        SchedulerSettings(misfire_grace=DUPLICATE_WINDOW)


@pytest.mark.parametrize("cron", ["0 9 * * 8", "0 9 * * 5-1", "0 9 * * x"])
def test_a_day_of_week_crontab_does_not_have_is_refused(cron: str) -> None:
    with pytest.raises(ScheduleError) as refused:
        validate(ScheduleSpec(cron=cron), utc(2026, 1, 1))
    assert refused.value.field == "cron"
