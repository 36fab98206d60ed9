"""Applications: the tenants that own keys, worklets, secrets and runs."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pymongo import ASCENDING

from services.common.ids import new_id
from services.registry.auth import AdminTokenDep, ApplicationDep
from services.registry.bodies import (
    Application,
    ApplicationList,
    NewApplication,
    decode,
    read_body,
    reply,
)
from services.registry.context import RegistryDep
from services.registry.errors import InvalidRequest
from services.registry.openapi import doc
from services.registry.store import Document, now_stamp, parse_stamp

router = APIRouter(prefix="/v1/applications", tags=["applications"])

MAX_NAME = 100


def _application(doc: Document) -> Application:
    return Application(id=doc["_id"], name=doc["name"], created_at=parse_stamp(doc["created_at"]))


@router.post(
    "", status_code=201, openapi_extra=doc(body=NewApplication, answer=Application, status=201)
)
async def create_application(request: Request, registry: RegistryDep, _: AdminTokenDep) -> Response:
    """Create an application (admin token only)."""
    body = decode(await read_body(request, registry.settings.max_definition_bytes), NewApplication)
    name = body.name.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise InvalidRequest(f"name must be 1 to {MAX_NAME} printable characters - at `$.name`")
    doc_ = {"_id": new_id(), "name": name, "created_at": now_stamp()}
    await registry.store.applications.insert_one(doc_)
    await registry.readmodel.announce(doc_["_id"], "application", doc_["_id"], "put")
    return reply(_application(doc_), 201)


@router.get("", openapi_extra=doc(answer=ApplicationList))
async def list_applications(registry: RegistryDep, _: AdminTokenDep) -> Response:
    """Every application (admin token only), oldest first."""
    cursor = registry.store.applications.find({}).sort("created_at", ASCENDING)
    return reply(ApplicationList(items=[_application(d) async for d in cursor]))


@router.get("/{app_id}", openapi_extra=doc(answer=Application))
async def get_application(app: ApplicationDep) -> Response:
    return reply(_application(app))
