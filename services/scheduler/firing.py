"""Firing one slot of a schedule: once, however many replicas fire it.

Every replica fires every slot. For the slot at ``fire time`` of schedule S, whose run id is
R = ``slot_run_id(S, fire time)``, a replica reads ``last.{S}`` in the ``{P}_SCHEDULER``
bucket: the run id L of the last slot of S claimed for firing, with its revision. Run ids begin
with their slot's time, so they compare as the slots do.

- L later than R: a later slot was claimed; this one is stale. Nothing to do.
- L is R: a replica claimed this slot. Publish it anyway: JetStream keeps one copy, and if
  that replica died between its claim and its publications, the slot is not lost.
- Otherwise look at L's last event (direct get on EVENTS). With ``overlap: skip``, if L had not
  ended at the slot's time (not terminal, or stored after the slot), the slot is skipped: a
  ``RunCancelled`` for R (error ``OverlapSkipped``, ``Nats-Msg-Id: {R}.end``), so the registry
  records the skip as a CANCELLED run, once. The decision rests on what the stream had stored
  before the slot, so every replica makes the same one. Else claim the slot: write R with a
  compare-and-set on the revision read (a lost race reads again), then publish the
  ``RunQueued`` event (``Nats-Msg-Id: {R}.queued``) and the ``RunRequest`` (``Nats-Msg-Id:
  {S}:{fire time}``) in that order, awaiting each ack.

A claimed run L with no event, or only its queued event for a while, may have lost its request
with the replica that claimed it: while its slot is within the misfire grace it is published
again (JetStream's 10-minute duplicate window drops it if it was not lost). A failed NATS
operation retries the slot (every step is idempotent) until the misfire grace is spent or a
newer slot is due. Firings of one schedule run one after another in a replica, so each sees the
claim of the slot before it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BadRequestError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.errors import NotFoundError as StreamMessageNotFound
from nats.js.kv import KeyValue

from services.common.bus import EVENTS_MAX_AGE
from services.common.ids import run_time, slot_key, slot_run_id
from services.common.index import IndexView
from services.common.schedules import trigger
from shared.errors import RunErrorType
from shared.schemas import (
    TERMINAL,
    RunCancelled,
    RunError,
    RunQueued,
    RunRequest,
    ScheduleEntry,
    WorkletHead,
    encoder,
    event_decoder,
    status_of,
)
from shared.settings import SchedulerSettings
from shared.subjects import EVENT_KIND_HEADER, MSG_ID, Names

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 5.0  # seconds to wait for a JetStream ack
RETRY_DELAY = 0.5  # seconds before a failed slot is tried again (doubling, at most 8 s)
TRANSPORT_ERRORS = (nats.errors.Error, TimeoutError)
# A claimed run queued this long without starting may have lost its request with the replica
# that claimed it (or the executors are busy): publishing it again costs a duplicate at most.
UNSTARTED = timedelta(seconds=10)


async def last_fired_bucket(nc: Client, settings: SchedulerSettings) -> KeyValue:
    """The scheduler's own bucket: ``last.{schedule}`` = the run id of its last claimed slot.

    Entries expire with the EVENTS stream's events: past that, the run they name can no longer
    be looked up anyway, and an expired entry only means "nothing fired recently".
    """
    js = nc.jetstream()
    config = KeyValueConfig(
        bucket=settings.names.scheduler_bucket,
        history=1,
        ttl=EVENTS_MAX_AGE,
        storage=StorageType.FILE,
    )
    try:
        return await js.create_key_value(config)
    except BadRequestError:  # it exists with another configuration: use it as it is
        return await js.key_value(config.bucket)


class Firer:
    def __init__(
        self,
        nc: Client,
        settings: SchedulerSettings,
        heads: IndexView[WorkletHead],
        last_fired: KeyValue,
    ) -> None:
        self._js = nc.jetstream()
        self._names = settings.names
        self._settings = settings
        self._grace = timedelta(seconds=settings.misfire_grace)
        self._heads = heads
        self._last_fired = last_fired
        # per schedule ever fired here (a few bytes each): its lock, and its newest slot due
        self._locks: dict[str, asyncio.Lock] = {}
        self._newest: dict[str, datetime] = {}

    async def fire(self, entry: ScheduleEntry, slot: datetime) -> None:
        """Fire (or skip) the slot at ``slot``, retrying failures within the misfire grace.

        Slots that queued up behind a failing one (NATS away) coalesce: only the newest fires,
        as the slots missed while the scheduler was down do.
        """
        sid = entry.schedule_id
        lock = self._locks.setdefault(sid, asyncio.Lock())
        self._newest[sid] = max(self._newest.get(sid, slot), slot)
        async with lock:
            delay = RETRY_DELAY
            while True:
                if self._newest[sid] > slot:
                    log.info(
                        "schedule %s: slot %s coalesced into the slot %s",
                        sid,
                        slot.isoformat(),
                        self._newest[sid].isoformat(),
                    )
                    return
                late = datetime.now(UTC) - slot
                if late > self._grace:
                    log.warning(
                        "schedule %s: slot %s missed (%.1f s late, misfire grace %.0f s)",
                        entry.schedule_id,
                        slot.isoformat(),
                        late.total_seconds(),
                        self._grace.total_seconds(),
                    )
                    return
                try:
                    await self._fire(entry, slot)
                    return
                except TRANSPORT_ERRORS as err:
                    log.warning(
                        "schedule %s: slot %s failed, retrying in %.1f s: %r",
                        entry.schedule_id,
                        slot.isoformat(),
                        delay,
                        err,
                    )
                await asyncio.sleep(delay)
                delay = min(2 * delay, 8.0)

    async def _fire(self, entry: ScheduleEntry, slot: datetime) -> None:
        head = await self._heads.get(Names.worklet_head(entry.app_id, entry.worklet_id))
        if head is None:
            log.warning(
                "schedule %s: worklet %s/%s no longer exists; slot %s skipped",
                entry.schedule_id,
                entry.app_id,
                entry.worklet_id,
                slot.isoformat(),
            )
            return
        run_id = slot_run_id(entry.schedule_id, slot)
        key = Names.last_fired(entry.schedule_id)
        while True:
            last, revision = await self._read_last(key)
            if last is not None and last > run_id:
                log.debug("run %s: a later slot was claimed already", run_id)
                return
            if last == run_id:
                # Claimed by a replica, which publishes it now, or died before it could: publish
                # it too (JetStream keeps one copy), so the claim is never left unpublished.
                await self._publish(entry, head, slot, run_id)
                return
            if last is not None:
                running = await self._previous_running(entry, head, last, slot)
                if running and entry.spec.overlap == "skip":
                    await self._skip(entry, head, slot, run_id, last)
                    return
            try:
                await self._last_fired.update(key, run_id.encode(), last=revision)
            except KeyWrongLastSequenceError:
                continue  # another replica claimed a slot meanwhile: read what it claimed
            await self._publish(entry, head, slot, run_id)
            return

    async def _read_last(self, key: str) -> tuple[str | None, int]:
        """The last claimed run id (None if none) and the revision to update it from."""
        try:
            entry = await self._last_fired.get(key)
        except KeyNotFoundError as err:
            deleted = getattr(err, "entry", None)
            return None, deleted.revision if deleted is not None else 0
        return (entry.value.decode() if entry.value else None), entry.revision or 0

    async def _previous_running(
        self, entry: ScheduleEntry, head: WorkletHead, run_id: str, slot: datetime
    ) -> bool:
        """Whether ``run_id``, the schedule's last claimed run, had not ended by ``slot``.

        A claimed run with no event, or only its queued event for ``UNSTARTED``, may have lost
        its request with the replica that claimed it: it is published again (idempotent) if
        still recent.
        """
        subject = self._names.events(entry.app_id, entry.worklet_id, run_id)
        try:
            msg = await self._js.get_last_msg(self._names.events_stream, subject, direct=True)
        except StreamMessageNotFound:
            # never published, or gone from the stream (older than its retention)
            return await self._complete(entry, head, run_id)
        try:
            event = event_decoder.decode(msg.data or b"")
        except msgspec.DecodeError as err:
            log.error("run %s: last event does not decode, taking it as ended: %s", run_id, err)
            return False
        stored = msg.time or event.at
        if isinstance(event, RunQueued) and datetime.now(UTC) - stored > UNSTARTED:
            await self._complete(entry, head, run_id)
        if status_of(event) not in TERMINAL:
            return True
        return stored > slot  # ended after the slot

    async def _complete(self, entry: ScheduleEntry, head: WorkletHead, run_id: str) -> bool:
        """Publish a claimed run again if its slot is within the misfire grace (so JetStream
        still knows its message ids); whether it was."""
        approximate = run_time(run_id)  # its slot, to the millisecond
        if datetime.now(UTC) - approximate > self._grace:
            return False
        slot = trigger(entry).get_next_fire_time(None, approximate)
        if slot is None or slot_run_id(entry.schedule_id, slot) != run_id:
            log.debug(
                "run %s: claimed by schedule %s, which has changed since: not published again",
                run_id,
                entry.schedule_id,
            )
            return False
        await self._publish(entry, head, slot, run_id)
        return True

    async def _skip(
        self, entry: ScheduleEntry, head: WorkletHead, slot: datetime, run_id: str, running: str
    ) -> None:
        event = RunCancelled(
            run_id=run_id,
            app_id=entry.app_id,
            worklet_id=entry.worklet_id,
            version=head.version,
            trigger="schedule",
            at=datetime.now(UTC),
            schedule_id=entry.schedule_id,
            error=RunError(
                type=RunErrorType.OVERLAP_SKIPPED,
                message=(
                    f"Skipped the slot at {slot.astimezone(UTC).isoformat()}: the previous "
                    f"scheduled run {running} was still running (overlap: skip)"
                ),
            ),
        )
        subject = self._names.events(entry.app_id, entry.worklet_id, run_id)
        headers = {MSG_ID: f"{run_id}.end", EVENT_KIND_HEADER: "cancelled"}
        await self._js.publish(subject, encoder.encode(event), PUBLISH_TIMEOUT, headers=headers)
        log.info(
            "run %s: slot %s of schedule %s skipped, run %s still running",
            run_id,
            slot.isoformat(),
            entry.schedule_id,
            running,
        )

    async def _publish(
        self, entry: ScheduleEntry, head: WorkletHead, slot: datetime, run_id: str
    ) -> None:
        """The queued event, then the run request, on this connection, each ack awaited."""
        spec = entry.spec
        now = datetime.now(UTC)
        timeout = self._settings.run_timeout(head.settings, spec.background)
        queued = RunQueued(
            run_id=run_id,
            app_id=entry.app_id,
            worklet_id=entry.worklet_id,
            version=head.version,
            trigger="schedule",
            at=now,
            schedule_id=entry.schedule_id,
            input=spec.input,
            background=spec.background,
            timeout=timeout,
        )
        request = RunRequest(
            run_id=run_id,
            app_id=entry.app_id,
            worklet_id=entry.worklet_id,
            version=head.version,
            trigger="schedule",
            input=spec.input,
            timeout=timeout,
            background=spec.background,
            queued_at=now,
            schedule_id=entry.schedule_id,
        )
        events = self._names.events(entry.app_id, entry.worklet_id, run_id)
        runs = self._names.runs(entry.app_id, entry.worklet_id)
        queued_headers = {MSG_ID: f"{run_id}.queued", EVENT_KIND_HEADER: "queued"}
        await self._js.publish(
            events, encoder.encode(queued), PUBLISH_TIMEOUT, headers=queued_headers
        )
        ack = await self._js.publish(
            runs,
            encoder.encode(request),
            PUBLISH_TIMEOUT,
            headers={MSG_ID: slot_key(entry.schedule_id, slot)},
        )
        if ack.duplicate:
            log.debug("run %s: slot %s already queued", run_id, slot.isoformat())
        else:
            log.info(
                "run %s: fired slot %s of schedule %s on %s",
                run_id,
                slot.isoformat(),
                entry.schedule_id,
                runs,
            )
