"""Schedules: checking a ScheduleSpec and turning it into an APScheduler 3 trigger.

Used by the registry (to refuse bad schedules and show next fire times) and by the scheduler
(to fire them), so both compute the same slots.

Daylight saving: a cron with fixed hours fires once per wall-clock time. When clocks go back,
a time that occurs twice fires on its first occurrence only; when clocks go forward, a time
that does not exist fires at the same instant of the previous offset (one hour later on the
wall clock), so no slot is lost. A cron whose hour field is ``*`` (or a step such as ``*/2``)
fires by real time through the change, like an interval.

Cron expressions mean what crontab means: days of the week count from Sunday (0 or 7), which
APScheduler 3 alone would count from Monday (see ``crontab``); and when both the day of the
month and the day of the week are restricted (neither starts with ``*``), a day matching either
fires (``0 9 1 * 1``: the 1st of each month and every Monday), where APScheduler 3 alone would
want both.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
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


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab's 0 (and 7) is Sunday


def crontab(expr: str) -> str:
    """``expr`` as APScheduler 3 must read it to mean what crontab means.

    APScheduler 3 numbers days of the week from Monday (0) where crontab numbers them from
    Sunday (0 or 7), so ``0 9 * * 1-5`` would fire Tuesday to Saturday. The day-of-week field
    is rewritten as the names of its days (``mon,tue,wed,thu,fri``); ValueError if it is not a
    crontab day-of-week field. Other fields are left to APScheduler.
    """
    fields = expr.split()
    if len(fields) != 5 or fields[4] in ("*", "?"):
        return expr  # from_crontab reports a wrong field count
    days: set[int] = set()
    for part in fields[4].lower().split(","):
        spec, slash, step_text = part.partition("/")
        step = _number(step_text, "step") if slash else 1
        if spec == "*":
            first, last = 0, 6
        elif "-" in spec:
            start, _, end = spec.partition("-")
            first, last = _weekday(start), _weekday(end)
        else:
            first = _weekday(spec)
            last = 6 if slash else first  # "1/2": from Monday on, every other day
        if last < first or step < 1:
            raise ValueError(f"day of week {part!r} is not a crontab range")
        days.update(day % 7 for day in range(first, last + 1, step))
    return " ".join([*fields[:4], ",".join(_WEEKDAYS[day] for day in sorted(days))])


def _weekday(token: str) -> int:
    if token in _WEEKDAYS:
        return _WEEKDAYS.index(token)
    day = _number(token, "day of week")
    if day > 7:
        raise ValueError(f"day of week {token!r} is not 0-7 or sun-sat")
    return day


def _number(token: str, what: str) -> int:
    if not token.isdigit():
        raise ValueError(f"{what} {token!r} is not a number")
    return int(token)


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
            WallClockCronTrigger.of(spec.cron, tz)
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
    """A cron trigger that follows the daylight-saving rules of the module docstring.

    APScheduler 3.11's own CronTrigger does its arithmetic on aware datetimes and gets some
    transitions wrong: it skips the first midnight after clocks go forward in Europe/Paris and
    America/New_York, and started just after a gap it misses the slot moved out of that gap,
    so a replica (re)started there would disagree with one that ran through. Here the cron
    fields are matched on naive wall-clock times (a CronTrigger in UTC, which has no
    transitions) and each matching wall-clock time is then mapped to its instants: one
    normally, the pre-transition offset in a gap, the first (fixed hours) or both occurrences
    in a fold. The next fire time is the earliest such instant at or after the floor.
    """

    def __init__(self, either_day: bool = False, **fields: Any) -> None:
        super().__init__(**fields)
        wall = {k: v for k, v in fields.items() if k not in _NOT_FIELDS}
        self._wall: CronTrigger | _Earliest = CronTrigger(**wall, timezone=UTC)
        if either_day:  # crontab: the day of the month or the day of the week
            self._wall = _Earliest(
                CronTrigger(**{**wall, "day_of_week": "*"}, timezone=UTC),
                CronTrigger(**{**wall, "day": "*"}, timezone=UTC),
            )

    @classmethod
    def of(cls, expr: str, tz: tzinfo) -> WallClockCronTrigger:
        """The trigger of a crontab expression (ValueError if it is not one)."""
        fields = crontab(expr).split()
        if len(fields) != 5:
            raise ValueError(f"Wrong number of fields; got {len(fields)}, expected 5")
        minute, hour, day, month, day_of_week = fields
        either = not day.startswith("*") and not expr.split()[4].startswith("*")
        return cls(
            either_day=either,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=day_of_week,
            timezone=tz,
        )

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if previous_fire_time is not None:  # strictly after the previous slot
            floor = previous_fire_time.astimezone(UTC) + timedelta(microseconds=1)
        else:
            floor = now.astimezone(UTC)
        wall = floor.astimezone(self.timezone).replace(tzinfo=None)
        if not self._steady(floor):  # a gap or fold nearby: earlier wall times may map later
            wall -= _AROUND
        best: datetime | None = None
        best_wall = wall
        candidate: datetime | None = self._wall.get_next_fire_time(None, wall.replace(tzinfo=UTC))
        while candidate is not None:
            naive = candidate.replace(tzinfo=None)
            if best is not None and (naive > best_wall + _AROUND or self._steady(best)):
                break  # no later wall-clock time can map to an earlier instant
            for instant in self._instants(naive):
                if instant >= floor and (best is None or instant < best):
                    best, best_wall = instant, naive
            candidate = self._wall.get_next_fire_time(candidate, candidate)
        return None if best is None else best.astimezone(self.timezone)

    def _steady(self, instant: datetime) -> bool:
        """No clock change within ``_AROUND`` of ``instant``."""
        before = (instant - _AROUND).astimezone(self.timezone).utcoffset()
        return before == (instant + _AROUND).astimezone(self.timezone).utcoffset()

    def _instants(self, wall: datetime) -> list[datetime]:
        """The instants (UTC) at which the wall-clock time ``wall`` fires."""
        first = wall.replace(tzinfo=self.timezone, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self.timezone, fold=1).astimezone(UTC)
        if first == second:
            return [first]
        if first.astimezone(self.timezone).replace(tzinfo=None) != wall:
            return [first]  # in a gap: fold 0 carries the offset before the change
        return [first] if _fixed_hours(self) else [first, second]


class _Earliest:
    """Several triggers as one: the earliest of their next fire times."""

    def __init__(self, *triggers: CronTrigger) -> None:
        self._triggers = triggers

    def get_next_fire_time(self, previous: datetime | None, now: datetime) -> datetime | None:
        times = [t.get_next_fire_time(previous, now) for t in self._triggers]
        return min((time for time in times if time is not None), default=None)


_NOT_FIELDS = ("timezone", "start_date", "end_date", "jitter")
_AROUND = timedelta(hours=3)  # more than any daylight-saving shift (at most two hours)


def _fixed_hours(trigger: CronTrigger) -> bool:
    hour = next(f for f in trigger.fields if f.name == "hour")
    return not str(hour).startswith("*")


def trigger(entry: ScheduleEntry) -> BaseTrigger:
    spec = entry.spec
    tz = zone(spec.timezone)
    if spec.cron is not None:
        return WallClockCronTrigger.of(spec.cron, tz)
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
