"""Schedules: at most one per worklet, fired by the scheduler, which follows the key-value
entry ``schedule.{app}.{worklet}`` (a ``ScheduleEntry``).

A PUT checks the whole body before anything is written: a refusal is a 422 whose
``error.field`` names the field at fault (``cron``, ``every``, ``at``, ``timezone``, or the
field a shape error points at). Then, under the application's write lock: MongoDB, then the
key-value entry, then a ``ChangeNotice`` (kind ``schedule``, id = the worklet id).

``schedule_id`` is made by the first PUT and kept by later ones (a DELETE then PUT makes a new
one). ``anchor``, the origin of an ``every`` schedule's slots, is the creation time truncated
to the second and is renewed only when the interval changes: every scheduler replica computes
the same slots, and editing the input or the time zone does not shift them.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from msgspec import UNSET
from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from services.common.ids import new_id
from services.common.schedules import ScheduleError, next_fire_times, parse_every, validate, zone
from services.registry import records
from services.registry.auth import ApplicationDep
from services.registry.bodies import Schedule, ScheduleList, decode, no_content, read_body, reply
from services.registry.context import Registry, RegistryDep
from services.registry.errors import Conflict, FieldErrorResponse, InvalidSchedule, NotFound
from services.registry.openapi import doc
from services.registry.readmodel import schedule_entry, schedule_of, spec_of
from services.registry.routes.worklets import find_worklet
from services.registry.store import Document, parse_stamp, stamp
from shared.schemas import ScheduleEntry, ScheduleSpec, Status, encoder
from shared.subjects import Names

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/applications/{app_id}", tags=["schedules"])

NEXT_FIRE_TIMES = 5
KINDS = ("cron", "every", "at")
_FIELDS = frozenset(ScheduleSpec.__struct_fields__)
_AT_FIELD = re.compile(r" - at `\$\.([A-Za-z_]+)")

WorkletRef = Annotated[str, Path(description="the worklet's id or name")]


# ---------------------------------------------------------------- checking a body


def _field_at(message: str) -> str | None:
    """The top-level field a msgspec error points at (``... - at `$.overlap```)."""
    found = _AT_FIELD.search(message)
    return found.group(1) if found and found.group(1) in _FIELDS else None


def _kind(spec: ScheduleSpec) -> str:
    return next(name for name in KINDS if getattr(spec, name) is not None)


def _interval(spec: ScheduleSpec) -> timedelta | None:
    return parse_every(spec.every) if spec.every is not None else None


def _check(spec: ScheduleSpec, now: datetime) -> None:
    """``validate``, and the schedule can fire at least once; InvalidSchedule otherwise."""
    try:
        validate(spec, now)
        probe = ScheduleEntry(
            schedule_id="probe",
            app_id="probe",
            worklet_id="probe",
            spec=msgspec.structs.replace(spec, enabled=True),
            anchor=now.replace(microsecond=0),
            updated_at=now,
        )
        fires = next_fire_times(probe, now, 1)
    except ScheduleError as err:
        raise InvalidSchedule(str(err), field=err.field) from None
    except (OverflowError, ValueError) as err:  # an interval beyond the calendar's dates
        kind = _kind(spec)
        raise InvalidSchedule(
            f"{kind} {getattr(spec, kind)!r} cannot be scheduled: {err}", field=kind
        ) from None
    if not fires:
        raise InvalidSchedule(f"cron expression {spec.cron!r} never fires", field=_kind(spec))


async def _read_spec(request: Request, registry: Registry, now: datetime) -> ScheduleSpec:
    body = await read_body(request, registry.settings.max_definition_bytes)
    try:
        spec = decode(body, ScheduleSpec, InvalidSchedule)
    except InvalidSchedule as err:
        err.field = _field_at(err.message)
        raise
    _check(spec, now)
    return spec


# ---------------------------------------------------------------- answers


def _fire_times(entry: ScheduleEntry, now: datetime) -> list[datetime]:
    """The next fire times in the schedule's time zone; none for a past one-off."""
    try:
        tz = zone(entry.spec.timezone)
        fires = next_fire_times(entry, now, NEXT_FIRE_TIMES)
    except (OverflowError, ValueError) as err:  # e.g. a time zone since removed from tzdata
        log.warning("schedule %s: no next fire times: %s", entry.schedule_id, err)
        return []
    return [fire.astimezone(tz) for fire in fires if fire >= now]


def _schedule(
    head: Document, doc_: Document, last: Document | None, skipped: int, now: datetime
) -> Schedule:
    entry = schedule_of(doc_)
    spec = entry.spec
    return Schedule(
        worklet_id=head["_id"],
        worklet_name=head["name"],
        schedule_id=entry.schedule_id,
        cron=UNSET if spec.cron is None else spec.cron,
        every=UNSET if spec.every is None else spec.every,
        at=UNSET if spec.at is None else spec.at,
        timezone=spec.timezone,
        input=spec.input,
        background=spec.background,
        enabled=spec.enabled,
        overlap=spec.overlap,
        next_fire_times=_fire_times(entry, now),
        last_run=None if last is None else records.last_run(last),
        skipped=skipped,
        created_at=parse_stamp(doc_["created_at"]),
        updated_at=parse_stamp(doc_["updated_at"]),
    )


async def _skipped(registry: Registry, app_id: str, schedule_ids: list[str]) -> dict[str, int]:
    """How many slots of each schedule were skipped (overlap ``skip``)."""
    if not schedule_ids:
        return {}
    match: Document = {
        "app_id": app_id,
        "schedule_id": {"$in": schedule_ids},
        "status": Status.CANCELLED.value,
        "error": {"$regex": re.escape(records.SKIPPED_ERROR_PATTERN)},
    }
    group = {"_id": "$schedule_id", "n": {"$sum": 1}}
    cursor = await registry.store.runs.aggregate([{"$match": match}, {"$group": group}])
    return {found["_id"]: int(found["n"]) async for found in cursor}


async def _answers(
    registry: Registry, app_id: str, pairs: list[tuple[Document, Document]]
) -> list[Schedule]:
    """The answers for (worklet head, schedule document) pairs."""
    skipped = await _skipped(registry, app_id, [d["schedule_id"] for _, d in pairs])
    now = datetime.now(UTC)
    answers = []
    for head, doc_ in pairs:
        last = await registry.store.runs.find_one(
            {"app_id": app_id, "schedule_id": doc_["schedule_id"]},
            records.SUMMARY_FIELDS,
            sort=[("run_id", DESCENDING)],
        )
        answers.append(_schedule(head, doc_, last, skipped.get(doc_["schedule_id"], 0), now))
    return answers


# ---------------------------------------------------------------- routes

_SCHEDULE = "/worklets/{worklet_id}/schedule"


_PUT_DOC = doc(body=ScheduleSpec, answer=Schedule, error=FieldErrorResponse)
_PUT_DOC["responses"]["201"] = {**_PUT_DOC["responses"]["200"], "description": "Created"}


@router.put(_SCHEDULE, openapi_extra=_PUT_DOC)
async def put_schedule(
    worklet_id: WorkletRef, request: Request, app: ApplicationDep, registry: RegistryDep
) -> Response:
    """Create (201) or replace (200) the worklet's schedule: exactly one of `cron` (five
    fields), `every` (`30s`, `15m`, `1h30m`; at least one second) or `at` (ISO 8601, one-off,
    in the future). Refusals are 422 with `error.field`, and store nothing."""
    app_id = app["_id"]
    now = datetime.now(UTC)
    spec = await _read_spec(request, registry, now)
    async with registry.writing(app_id):
        head = await find_worklet(registry, app_id, worklet_id)
        old = await registry.store.schedules.find_one({"_id": head["_id"]})
        fields: Document = {"spec": encoder.encode(spec).decode(), "updated_at": stamp(now)}
        anchor = stamp(now.replace(microsecond=0))
        if old is None:
            current: Document = {
                "_id": head["_id"],
                "app_id": app_id,
                "worklet_id": head["_id"],
                "schedule_id": new_id(),
                **fields,
                "anchor": anchor,
                "created_at": fields["updated_at"],
            }
            try:
                await registry.store.schedules.insert_one(current)
            except DuplicateKeyError:
                raise Conflict("the schedule was changed by another request; retry") from None
        else:
            if _interval(spec) != _interval(spec_of(old)):
                fields["anchor"] = anchor
            moved = await registry.store.schedules.update_one(
                {"_id": old["_id"], "updated_at": old["updated_at"]}, {"$set": fields}
            )
            if moved.matched_count == 0:
                raise Conflict("the schedule was changed or deleted by another request; retry")
            current = {**old, **fields}
        await registry.readmodel.put(schedule_entry(current))
        await registry.readmodel.announce(app_id, "schedule", head["_id"], "put")
    [answer] = await _answers(registry, app_id, [(head, current)])
    return reply(answer, 201 if old is None else 200)


@router.get(_SCHEDULE, openapi_extra=doc(answer=Schedule))
async def get_schedule(
    worklet_id: WorkletRef, app: ApplicationDep, registry: RegistryDep
) -> Response:
    """The worklet's schedule with its next fire times and its last scheduled run."""
    head = await find_worklet(registry, app["_id"], worklet_id)
    found = await registry.store.schedules.find_one({"_id": head["_id"]})
    if found is None:
        raise NotFound(f"worklet {head['name']!r} has no schedule")
    [answer] = await _answers(registry, app["_id"], [(head, found)])
    return reply(answer)


@router.delete(_SCHEDULE, status_code=204)
async def delete_schedule(
    worklet_id: WorkletRef, app: ApplicationDep, registry: RegistryDep
) -> Response:
    """Remove the worklet's schedule; runs already queued still run."""
    app_id = app["_id"]
    async with registry.writing(app_id):
        head = await find_worklet(registry, app_id, worklet_id)
        deleted = await registry.store.schedules.delete_one({"_id": head["_id"]})
        if deleted.deleted_count == 0:
            raise NotFound(f"worklet {head['name']!r} has no schedule")
        await registry.readmodel.delete(Names.schedule(app_id, head["_id"]))
        await registry.readmodel.announce(app_id, "schedule", head["_id"], "delete")
    return no_content()


@router.get("/schedules", openapi_extra=doc(answer=ScheduleList))
async def list_schedules(app: ApplicationDep, registry: RegistryDep) -> Response:
    """Every scheduled worklet of the application, by name, with its next fire times, its last
    scheduled run and its skipped slots."""
    app_id = app["_id"]
    found = [d async for d in registry.store.schedules.find({"app_id": app_id})]
    heads: dict[str, Any] = {
        d["_id"]: d
        async for d in registry.store.worklets.find(
            {"app_id": app_id, "_id": {"$in": [d["_id"] for d in found]}}, {"settings": 0}
        )
    }
    pairs = sorted(
        ((heads[d["_id"]], d) for d in found if d["_id"] in heads), key=lambda p: p[0]["name"]
    )
    return reply(ScheduleList(items=await _answers(registry, app_id, pairs)))
