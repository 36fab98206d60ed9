"""The APScheduler side: one job per followed schedule, each firing with the slot it is for.

Jobs live in an ``AsyncIOScheduler`` (APScheduler 3.11) on the service's event loop, keyed by
the schedule's key in the read model (``schedule.{app}.{worklet}``); a put adds or replaces the
job, a delete or a disabled schedule removes it. Triggers come from
``services.common.schedules.trigger``, the same code the registry shows next fire times with,
so intervals are aligned on the entry's anchor and daylight-saving changes follow its rules.

APScheduler 3 tells executors, not job functions, when a run was scheduled; ``SlotExecutor``
passes that time on (``slot=``), so a firing never mistakes ``now()`` for its slot.

A job (re)starts from the first slot after ``now - misfire_grace`` (never before the entry's
``updated_at``): a scheduler that was down briefly fires the slot it missed once, coalesced
with any other missed slot of that schedule, and the firing itself decides whether a replica
fired it already.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from services.common.schedules import ScheduleError, trigger
from shared.schemas import ScheduleEntry

log = logging.getLogger(__name__)

Fire = Callable[[ScheduleEntry, datetime], Awaitable[None]]

# Firings of one schedule queue behind each other (see Firer); a firing stuck beyond the
# misfire grace gives up by itself, so this only bounds a pile-up while NATS is away.
MAX_INSTANCES = 100


class SlotExecutor(AsyncIOExecutor):  # type: ignore[misc]  # APScheduler 3 is untyped
    """Runs a job's coroutine function as ``func(*args, slot=run_time)``, once per run time.

    Misfires are judged by the firing itself (it knows the grace and logs with the schedule's
    id), so this does not drop late run times as APScheduler's ``run_coroutine_job`` would.
    Shutting down does not cancel firings in flight: ``drain`` waits for them first.
    """

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        task = self._eventloop.create_task(self._run(job, run_times), name=f"job {job.id}")
        self._pending_futures.add(task)
        task.add_done_callback(lambda done: self._finished(job.id, done))

    async def _run(self, job: Any, run_times: list[datetime]) -> list[JobExecutionEvent]:
        events = []
        for run_time in run_times:
            try:
                await job.func(*job.args, **job.kwargs, slot=run_time)
            except Exception as err:
                log.exception("job %s failed for the slot at %s", job.id, run_time.isoformat())
                events.append(
                    JobExecutionEvent(
                        EVENT_JOB_ERROR, job.id, job._jobstore_alias, run_time, exception=err
                    )
                )
            else:
                events.append(
                    JobExecutionEvent(EVENT_JOB_EXECUTED, job.id, job._jobstore_alias, run_time)
                )
        return events

    def _finished(self, job_id: str, task: asyncio.Task[list[JobExecutionEvent]]) -> None:
        self._pending_futures.discard(task)
        if task.cancelled():
            self._run_job_success(job_id, [])
        elif (err := task.exception()) is not None:
            self._run_job_error(job_id, err, err.__traceback__)
        else:
            self._run_job_success(job_id, task.result())

    def shutdown(self, wait: bool = True) -> None:
        pass  # ``drain`` has already waited for (or cancelled) the firings in flight

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the firings in flight, then cancel the rest."""
        pending = set(self._pending_futures)
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            log.warning("cancelled %d firings still in flight after %.0f s", len(late), grace)
            await asyncio.wait(late)


class Timetable:
    """The APScheduler jobs of the schedules followed, one per read-model key."""

    def __init__(self, fire: Fire, misfire_grace: float) -> None:
        self._fire = fire
        self._grace = timedelta(seconds=misfire_grace)
        self._entries: dict[str, ScheduleEntry] = {}
        self._executor = SlotExecutor()
        self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            executors={"default": self._executor},
            job_defaults={
                "coalesce": True,
                "misfire_grace_time": misfire_grace,
                "max_instances": MAX_INSTANCES,
            },
        )

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def __len__(self) -> int:
        return len(self._entries)

    def start(self) -> None:
        """Start firing (needs the running event loop)."""
        self._scheduler.start()

    async def stop(self, wait: float) -> None:
        """Stop firing; wait up to ``wait`` seconds for firings in flight to publish."""
        if not self._scheduler.running:
            return
        self._scheduler.pause()
        await self._executor.drain(wait)
        self._scheduler.shutdown(wait=False)

    def put(self, key: str, entry: ScheduleEntry) -> None:
        """Add, replace or (disabled, or no slot left) remove the job of ``key``."""
        if self._entries.get(key) == entry:
            return  # the same entry again (a feed that watched again, a registry rebuild)
        if not entry.spec.enabled:
            self._remove(key, "disabled")
            return
        try:
            source = trigger(entry)
        except (ScheduleError, ValueError) as err:
            log.error("schedule %s (%s) cannot be used: %s", entry.schedule_id, key, err)
            self._remove(key, "unusable")
            return
        now = datetime.now(UTC)
        since = max(now - self._grace, _aware(entry.updated_at))
        first: datetime | None = source.get_next_fire_time(None, since)
        if first is None or first < since:  # a one-off's date is its slot, however old
            self._remove(key, "no slot left")
            return
        self._entries[key] = entry
        self._scheduler.add_job(
            self._slot,
            trigger=source,
            args=(key, entry),
            id=key,
            name=f"schedule {entry.schedule_id}",
            replace_existing=True,
            next_run_time=first,
        )
        log.info(
            "schedule %s of worklet %s/%s: %s %s",
            entry.schedule_id,
            entry.app_id,
            entry.worklet_id,
            "missed slots since" if first <= now else "next slot",
            first.isoformat(),
        )

    def delete(self, key: str) -> None:
        self._remove(key, "deleted")

    def job(self, key: str) -> Any:
        """The APScheduler job of ``key`` (``next_run_time``...), or None."""
        return self._scheduler.get_job(key)

    def _remove(self, key: str, why: str) -> None:
        entry = self._entries.pop(key, None)
        if self._scheduler.get_job(key) is not None:
            self._scheduler.remove_job(key)
        if entry is not None:
            log.info("schedule %s (%s) %s: no more slots", entry.schedule_id, key, why)

    async def _slot(self, key: str, entry: ScheduleEntry, slot: datetime | None = None) -> None:
        """The job function; ``slot`` comes from SlotExecutor."""
        if slot is None:
            raise TypeError("a schedule job runs through SlotExecutor, which passes its slot")
        if self._entries.get(key) is not entry:
            log.debug("schedule %s changed before its slot %s fired", entry.schedule_id, slot)
            return
        await self._fire(entry, slot)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
