"""Worklets: every create or update stores a new immutable version, then moves the head.

Writes go in this order, so nothing is half-written after a refusal: the definition is fully
checked first; the version document is inserted before the head that points at it (and removed
again if the head cannot be written); then the read model is updated and a notice broadcast.
A worklet is addressed by its id or, failing that, its name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from services.common.ids import new_id
from services.registry.auth import ApplicationDep
from services.registry.bodies import (
    VersionInfo,
    VersionList,
    Worklet,
    WorkletList,
    WorkletSummary,
    decode,
    item_id_at,
    no_content,
    read_body,
    reply,
)
from services.registry.context import Registry, RegistryDep
from services.registry.errors import Conflict, InvalidDefinition, NotFound
from services.registry.openapi import doc
from services.registry.readmodel import definition_of, head_entry, settings_of, version_entry
from services.registry.store import Document, find_by_ref, now_stamp, parse_stamp
from services.registry.validate import check_definition, worklet_references
from shared.schemas import Definition, encoder
from shared.subjects import Names

router = APIRouter(prefix="/v1/applications/{app_id}/worklets", tags=["worklets"])


def _version_id(worklet_id: str, version: int) -> str:
    return f"{worklet_id}.{version}"


def _worklet(head: Document, version: Document) -> Worklet:
    definition = definition_of(version)
    return Worklet(
        id=head["_id"],
        app_id=head["app_id"],
        name=version["name"],
        version=version["version"],
        settings=definition.settings,
        definition=definition,
        created_at=parse_stamp(head["created_at"]),
        updated_at=parse_stamp(version["created_at"]),
    )


async def find_worklet(registry: Registry, app_id: str, ref: str) -> Document:
    head = await find_by_ref(registry.store.worklets, app_id, ref)
    if head is None:
        raise NotFound(f"no worklet {ref!r} in this application")
    return head


async def _version(registry: Registry, head: Document, number: int) -> Document:
    found = None
    if number <= head["version"]:
        found = await registry.store.versions.find_one({"_id": _version_id(head["_id"], number)})
    if found is None:
        raise NotFound(f"worklet {head['_id']!r} has no version {number}")
    return found


async def _read_definition(request: Request, registry: Registry, app_id: str) -> Definition:
    """The body decoded and checked, worklet blocks resolved; or InvalidDefinition."""
    body = await read_body(request, registry.settings.max_definition_bytes)
    try:
        definition = decode(body, Definition, InvalidDefinition)
    except InvalidDefinition as err:
        err.block = item_id_at(body, err.message, "blocks")
        raise
    known = await resolve_worklets(registry, app_id, worklet_references(definition))
    return check_definition(definition, known)


async def resolve_worklets(registry: Registry, app_id: str, refs: Iterable[str]) -> dict[str, str]:
    """The worklet id of each reference (an id, else a name) that names one of the application:
    two queries, however many references."""
    wanted = list(set(refs))
    if not wanted:
        return {}
    worklets = registry.store.worklets
    by_id = worklets.find({"app_id": app_id, "_id": {"$in": wanted}}, {"_id": 1})
    known: dict[str, str] = {d["_id"]: d["_id"] async for d in by_id}
    rest = [ref for ref in wanted if ref not in known]
    if rest:
        by_name = worklets.find({"app_id": app_id, "name": {"$in": rest}}, {"name": 1})
        known.update({d["name"]: d["_id"] async for d in by_name})
    return known


async def _publish(registry: Registry, head: Document, version: Document) -> None:
    await registry.readmodel.put(version_entry(version), head_entry(head))
    await registry.readmodel.announce(head["app_id"], "worklet", head["_id"], "put")


def _documents(
    app_id: str, worklet_id: str, number: int, definition: Definition, now: str
) -> tuple[Document, Document]:
    """The version document and the fields of the head for ``definition``."""
    version = {
        "_id": _version_id(worklet_id, number),
        "app_id": app_id,
        "worklet_id": worklet_id,
        "version": number,
        "name": definition.name,
        "definition": encoder.encode(definition).decode(),
        "created_at": now,
    }
    head = {
        "name": definition.name,
        "version": number,
        "settings": encoder.encode(definition.settings).decode(),
        "updated_at": now,
    }
    return version, head


async def _name_taken(registry: Registry, app_id: str, name: str, worklet_id: str | None) -> None:
    other = await registry.store.worklets.find_one({"app_id": app_id, "name": name})
    if other is not None and other["_id"] != worklet_id:
        raise Conflict(f"a worklet named {name!r} already exists in this application")


@router.post("", status_code=201, openapi_extra=doc(body=Definition, answer=Worklet, status=201))
async def create_worklet(request: Request, app: ApplicationDep, registry: RegistryDep) -> Response:
    """Create a worklet (version 1) from a definition; 409 if the name is taken."""
    app_id = app["_id"]
    definition = await _read_definition(request, registry, app_id)
    async with registry.writing(app_id):
        await _name_taken(registry, app_id, definition.name, None)
        worklet_id, now = new_id(), now_stamp()
        version, fields = _documents(app_id, worklet_id, 1, definition, now)
        head = {"_id": worklet_id, "app_id": app_id, **fields, "created_at": now}
        await registry.store.versions.insert_one(version)
        try:
            await registry.store.worklets.insert_one(head)
        except DuplicateKeyError:
            await registry.store.versions.delete_one({"_id": version["_id"]})
            raise Conflict(
                f"a worklet named {definition.name!r} already exists in this application"
            ) from None
        await _publish(registry, head, version)
    return reply(_worklet(head, version), 201)


@router.get("", openapi_extra=doc(answer=WorkletList))
async def list_worklets(app: ApplicationDep, registry: RegistryDep) -> Response:
    """The application's worklets with their current version, by name."""
    cursor = registry.store.worklets.find({"app_id": app["_id"]}).sort("name", ASCENDING)
    items = [
        WorkletSummary(
            id=d["_id"],
            name=d["name"],
            version=d["version"],
            settings=settings_of(d),
            created_at=parse_stamp(d["created_at"]),
            updated_at=parse_stamp(d["updated_at"]),
        )
        async for d in cursor
    ]
    return reply(WorkletList(items=items))


@router.get("/{worklet_id}", openapi_extra=doc(answer=Worklet))
async def get_worklet(
    worklet_id: str,
    app: ApplicationDep,
    registry: RegistryDep,
    version: Annotated[int | None, Query(ge=1, description="a past version")] = None,
) -> Response:
    """The current version of a worklet, or version N with `?version=N`."""
    head = await find_worklet(registry, app["_id"], worklet_id)
    found = await _version(registry, head, version if version is not None else head["version"])
    return reply(_worklet(head, found))


@router.get("/{worklet_id}/versions", openapi_extra=doc(answer=VersionList))
async def list_versions(worklet_id: str, app: ApplicationDep, registry: RegistryDep) -> Response:
    """Every version of a worklet, newest first."""
    head = await find_worklet(registry, app["_id"], worklet_id)
    cursor = registry.store.versions.find(
        {"worklet_id": head["_id"], "version": {"$lte": head["version"]}}
    ).sort("version", DESCENDING)
    items = [
        VersionInfo(version=d["version"], name=d["name"], created_at=parse_stamp(d["created_at"]))
        async for d in cursor
    ]
    return reply(VersionList(items=items))


@router.put("/{worklet_id}", openapi_extra=doc(body=Definition, answer=Worklet))
async def update_worklet(
    worklet_id: str, request: Request, app: ApplicationDep, registry: RegistryDep
) -> Response:
    """Store a new version; a rename keeps the id (409 if the new name is taken)."""
    app_id = app["_id"]
    definition = await _read_definition(request, registry, app_id)
    async with registry.writing(app_id):
        head = await find_worklet(registry, app_id, worklet_id)
        await _name_taken(registry, app_id, definition.name, head["_id"])
        number = head["version"] + 1
        version, fields = _documents(app_id, head["_id"], number, definition, now_stamp())
        try:
            await registry.store.versions.insert_one(version)
        except DuplicateKeyError:
            raise Conflict("the worklet was changed by another request; retry") from None
        try:
            moved = await registry.store.worklets.update_one(
                {"_id": head["_id"], "version": head["version"]}, {"$set": fields}
            )
        except DuplicateKeyError:
            await registry.store.versions.delete_one({"_id": version["_id"]})
            raise Conflict(
                f"a worklet named {definition.name!r} already exists in this application"
            ) from None
        if moved.matched_count == 0:
            await registry.store.versions.delete_one({"_id": version["_id"]})
            raise Conflict("the worklet was changed or deleted by another request; retry")
        head.update(fields)
        await _publish(registry, head, version)
    return reply(_worklet(head, version))


@router.delete("/{worklet_id}", status_code=204)
async def delete_worklet(worklet_id: str, app: ApplicationDep, registry: RegistryDep) -> Response:
    """Delete a worklet and its schedule; its versions stay readable by runs already queued."""
    app_id = app["_id"]
    async with registry.writing(app_id):
        head = await find_worklet(registry, app_id, worklet_id)
        # the schedule first: a crash in between leaves a worklet without a schedule, never
        # a schedule without a worklet
        unscheduled = await registry.store.schedules.delete_one({"_id": head["_id"]})
        deleted = await registry.store.worklets.delete_one({"_id": head["_id"], "app_id": app_id})
        if deleted.deleted_count == 0:
            raise NotFound(f"no worklet {worklet_id!r} in this application")
        if unscheduled.deleted_count:
            await registry.readmodel.delete(Names.schedule(app_id, head["_id"]))
        await registry.readmodel.delete(Names.worklet_head(app_id, head["_id"]))
        if unscheduled.deleted_count:
            await registry.readmodel.announce(app_id, "schedule", head["_id"], "delete")
        await registry.readmodel.announce(app_id, "worklet", head["_id"], "delete")
    return no_content()
