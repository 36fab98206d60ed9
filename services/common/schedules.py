"""Schedules: checking a ScheduleSpec and turning it into an APScheduler 3 trigger.

Used by the registry (to refuse bad schedules and show next fire times) and by the scheduler
(to fire them), so both compute the same slots.

Daylight saving: a cron with fixed hours fires once per wall-clock time. When clocks go back,
a time that occurs twice fires on its first occurrence only; when clocks go forward, a time
that does not exist fires at the same instant of the previous offset (one hour later on the
wall clock), so no slot is lost. A cron whose hour field is ``*`` (or a step such as ``*/2``)
fires by real time through the change, like an interval.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from shared.schemas import ScheduleEntry, ScheduleSpec

MIN_INTERVAL = timedelta(seconds=1)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_EVERY = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


class ScheduleError(ValueError):
    """A schedule that cannot be used; ``field`` names the part at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_every(text: str) -> timedelta:
    """``30s``, ``15m``, ``1h``, ``1h30m``, ``1.5h``, ``2d``; ValueError otherwise."""
    compact = text.replace(" ", "")
    parts = _EVERY.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"{text!r} is not an interval such as 30s, 15m, 1h or 1h30m")
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            "timezone", f"unknown time zone {name!r} (use an IANA name such as Europe/Paris)"
        ) from None


def localize(at: datetime, tz: tzinfo) -> datetime:
    """An ``at`` without an offset is a wall-clock time in the schedule's time zone."""
    return at.replace(tzinfo=tz) if at.tzinfo is None else at


def validate(spec: ScheduleSpec, now: datetime) -> None:
    """Raise ScheduleError naming the field at fault, or return if the schedule can be used."""
    given = [name for name in ("cron", "every", "at") if getattr(spec, name) is not None]
    if len(given) != 1:
        which = " and ".join(given) if given else "none"
        raise ScheduleError(
            given[-1] if given else "cron",
            f"give exactly one of cron, every or at (got {which})",
        )
    tz = zone(spec.timezone)
    if spec.cron is not None:
        try:
            CronTrigger.from_crontab(spec.cron, timezone=tz)
        except ValueError as err:
            raise ScheduleError("cron", f"bad cron expression {spec.cron!r}: {err}") from None
    elif spec.every is not None:
        try:
            interval = parse_every(spec.every)
        except ValueError as err:
            raise ScheduleError("every", str(err)) from None
        if interval < MIN_INTERVAL:
            raise ScheduleError("every", f"interval {spec.every!r} is under one second")
    elif spec.at is not None and localize(spec.at, tz) <= now:
        raise ScheduleError("at", f"{spec.at.isoformat()} is in the past")


class WallClockCronTrigger(CronTrigger):  # type: ignore[misc]  # APScheduler 3 is untyped
    """A cron trigger that fires a repeated wall-clock time once (see the module docstring)."""

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        fire: datetime | None = super().get_next_fire_time(previous_fire_time, now)
        while fire is not None and fire.fold == 1 and _fixed_hours(self) and _ambiguous(fire):
            # step in UTC: wall-clock arithmetic would drop the fold and go back an hour
            after = (fire.astimezone(UTC) + timedelta(microseconds=1)).astimezone(fire.tzinfo)
            fire = super().get_next_fire_time(fire, after)
        return fire


def _fixed_hours(trigger: CronTrigger) -> bool:
    hour = next(f for f in trigger.fields if f.name == "hour")
    return not str(hour).startswith("*")


def _ambiguous(moment: datetime) -> bool:
    return moment.replace(fold=0).utcoffset() != moment.replace(fold=1).utcoffset()


def trigger(entry: ScheduleEntry) -> BaseTrigger:
    spec = entry.spec
    tz = zone(spec.timezone)
    if spec.cron is not None:
        cron: BaseTrigger = WallClockCronTrigger.from_crontab(spec.cron, timezone=tz)
        return cron
    if spec.every is not None:
        interval = parse_every(spec.every)
        return IntervalTrigger(
            seconds=interval.total_seconds(), start_date=entry.anchor, timezone=tz
        )
    assert spec.at is not None
    return DateTrigger(run_date=localize(spec.at, tz), timezone=tz)


def next_fire_times(entry: ScheduleEntry, now: datetime, count: int = 5) -> list[datetime]:
    """The next ``count`` slots after ``now`` (none when the schedule is disabled)."""
    if not entry.spec.enabled:
        return []
    found: list[datetime] = []
    source, previous = trigger(entry), None
    while len(found) < count:
        fire = source.get_next_fire_time(previous, now if previous is None else previous)
        if fire is None:
            break
        found.append(fire)
        previous = fire
    return found
