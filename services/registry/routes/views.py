"""Views: pages of components whose handlers and bindings invoke worklets (docs/web.md, "Views").

A body is decoded into ``ViewDefinition`` and fully checked (``validate_view``) before anything
is written; a refusal is a 422 ``invalid_definition`` whose ``error.component`` names the
component at fault. Then, under the application's write lock: MongoDB (collection ``views``),
the key-value entry ``view.{app}.{view}`` (a ``ViewEntry``, which the gateway serves), and a
``ChangeNotice`` of kind ``view``. The stored definition has every handler's and binding's
worklet resolved to ``worklet_id``, so renaming a worklet does not break a view.

A view is addressed by its id or, failing that, its name; its published page is
``{WORKLETS_GATEWAY_PUBLIC_URL}/views/{app}/{id}``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from services.common.ids import new_id
from services.registry.auth import ApplicationDep
from services.registry.bodies import (
    View,
    ViewList,
    ViewSummary,
    decode,
    item_id_at,
    no_content,
    read_body,
    reply,
)
from services.registry.context import Registry, RegistryDep
from services.registry.errors import ComponentErrorResponse, Conflict, InvalidView, NotFound
from services.registry.openapi import doc
from services.registry.readmodel import view_definition_of, view_entry
from services.registry.routes.worklets import resolve_worklets
from services.registry.store import Document, find_by_ref, now_stamp, parse_stamp
from services.registry.validate_view import validate_view, worklet_references
from shared.schemas import ViewDefinition, encoder
from shared.subjects import Names

router = APIRouter(prefix="/v1/applications/{app_id}/views", tags=["views"])

ViewRef = Annotated[str, Path(description="the view's id or name")]

_WRITE_DOC = doc(body=ViewDefinition, answer=View, error=ComponentErrorResponse)
_CREATE_DOC = doc(body=ViewDefinition, answer=View, status=201, error=ComponentErrorResponse)


def page_url(registry: Registry, app_id: str, view_id: str) -> str:
    """The published page of a view (served by the gateway)."""
    return f"{registry.settings.gateway_public_url.rstrip('/')}/views/{app_id}/{view_id}"


def _view(registry: Registry, doc_: Document) -> View:
    return View(
        id=doc_["_id"],
        app_id=doc_["app_id"],
        name=doc_["name"],
        title=doc_["title"],
        definition=view_definition_of(doc_),
        url=page_url(registry, doc_["app_id"], doc_["_id"]),
        created_at=parse_stamp(doc_["created_at"]),
        updated_at=parse_stamp(doc_["updated_at"]),
    )


async def _find(registry: Registry, app_id: str, ref: str) -> Document:
    found = await find_by_ref(registry.store.views, app_id, ref)
    if found is None:
        raise NotFound(f"no view {ref!r} in this application")
    return found


async def _read_view(request: Request, registry: Registry, app_id: str) -> ViewDefinition:
    """The body decoded and checked, worklet references resolved; or InvalidView."""
    body = await read_body(request, registry.settings.max_definition_bytes)
    try:
        view = decode(body, ViewDefinition, InvalidView)
    except InvalidView as err:
        err.component = item_id_at(body, err.message, "components")
        raise
    known = await resolve_worklets(registry, app_id, worklet_references(view))
    return validate_view(view, known)


def _fields(view: ViewDefinition, now: str) -> Document:
    return {
        "name": view.name,
        "title": view.title,
        "definition": encoder.encode(view).decode(),
        "updated_at": now,
    }


def _taken(name: str) -> Conflict:
    return Conflict(f"a view named {name!r} already exists in this application")


async def _publish(registry: Registry, doc_: Document) -> None:
    await registry.readmodel.put(view_entry(doc_))
    await registry.readmodel.announce(doc_["app_id"], "view", doc_["_id"], "put")


@router.post("", status_code=201, openapi_extra=_CREATE_DOC)
async def create_view(request: Request, app: ApplicationDep, registry: RegistryDep) -> Response:
    """Create a view; 409 if the name is taken, 422 (with `error.component`) if it is refused."""
    app_id = app["_id"]
    view = await _read_view(request, registry, app_id)
    async with registry.writing(app_id):
        now = now_stamp()
        doc_ = {"_id": new_id(), "app_id": app_id, **_fields(view, now), "created_at": now}
        try:
            await registry.store.views.insert_one(doc_)
        except DuplicateKeyError:
            raise _taken(view.name) from None
        await _publish(registry, doc_)
    return reply(_view(registry, doc_), 201)


@router.get("", openapi_extra=doc(answer=ViewList))
async def list_views(app: ApplicationDep, registry: RegistryDep) -> Response:
    """The application's views, by name, with their published pages."""
    cursor = registry.store.views.find({"app_id": app["_id"]}, {"definition": 0})
    items = [
        ViewSummary(
            id=d["_id"],
            name=d["name"],
            title=d["title"],
            url=page_url(registry, d["app_id"], d["_id"]),
            updated_at=parse_stamp(d["updated_at"]),
        )
        async for d in cursor.sort("name", ASCENDING)
    ]
    return reply(ViewList(items=items))


@router.get("/{view_id}", openapi_extra=doc(answer=View))
async def get_view(view_id: ViewRef, app: ApplicationDep, registry: RegistryDep) -> Response:
    """A view with its definition (worklet references resolved to `worklet_id`)."""
    return reply(_view(registry, await _find(registry, app["_id"], view_id)))


@router.put("/{view_id}", openapi_extra=_WRITE_DOC)
async def update_view(
    view_id: ViewRef, request: Request, app: ApplicationDep, registry: RegistryDep
) -> Response:
    """Replace a view's definition; its id and page stay (409 if a new name is taken)."""
    app_id = app["_id"]
    view = await _read_view(request, registry, app_id)
    async with registry.writing(app_id):
        old = await _find(registry, app_id, view_id)
        fields = _fields(view, now_stamp())
        try:
            moved = await registry.store.views.update_one(
                {"_id": old["_id"], "updated_at": old["updated_at"]}, {"$set": fields}
            )
        except DuplicateKeyError:
            raise _taken(view.name) from None
        if moved.matched_count == 0:
            raise Conflict("the view was changed or deleted by another request; retry")
        doc_ = {**old, **fields}
        await _publish(registry, doc_)
    return reply(_view(registry, doc_))


@router.delete("/{view_id}", status_code=204)
async def delete_view(view_id: ViewRef, app: ApplicationDep, registry: RegistryDep) -> Response:
    """Delete a view; its page stops working at once."""
    app_id = app["_id"]
    async with registry.writing(app_id):
        found = await _find(registry, app_id, view_id)
        deleted = await registry.store.views.delete_one({"_id": found["_id"], "app_id": app_id})
        if deleted.deleted_count == 0:
            raise NotFound(f"no view {view_id!r} in this application")
        await registry.readmodel.delete(Names.view(app_id, found["_id"]))
        await registry.readmodel.announce(app_id, "view", found["_id"], "delete")
    return no_content()
