"""Secrets: values the executor hands to user code; names are listed, values never returned.

A value is sealed (``services/common/sealing.py``) before it is written to MongoDB or to the
key-value bucket; only the executor, which holds the same key, opens it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pymongo import ASCENDING

from services.registry.auth import ApplicationDep
from services.registry.bodies import (
    SecretInfo,
    SecretList,
    SecretValue,
    decode,
    no_content,
    read_body,
    reply,
)
from services.registry.context import RegistryDep
from services.registry.errors import InvalidRequest, NotFound
from services.registry.openapi import doc
from services.registry.readmodel import secret_entry
from services.registry.store import now_stamp, parse_stamp
from shared.subjects import SECRET_NAME_PATTERN, Names

router = APIRouter(prefix="/v1/applications/{app_id}/secrets", tags=["secrets"])


def _secret_id(app_id: str, name: str) -> str:
    return f"{app_id}/{name}"


@router.put("/{name}", status_code=204, openapi_extra=doc(body=SecretValue))
async def put_secret(
    name: str, request: Request, app: ApplicationDep, registry: RegistryDep
) -> Response:
    """Set a secret (create or replace)."""
    if SECRET_NAME_PATTERN.fullmatch(name) is None:
        raise InvalidRequest(
            f"secret name {name!r} must start with a letter or '_' and contain only letters, "
            "digits, '_' and '-' (at most 64 characters)"
        )
    body = decode(await read_body(request, registry.settings.max_definition_bytes), SecretValue)
    doc_ = {
        "_id": _secret_id(app["_id"], name),
        "app_id": app["_id"],
        "name": name,
        "sealed": registry.sealer.seal(app["_id"], name, body.value),
        "updated_at": now_stamp(),
    }
    async with registry.writing(app["_id"]):
        await registry.store.secrets.update_one({"_id": doc_["_id"]}, {"$set": doc_}, upsert=True)
        await registry.readmodel.put(secret_entry(doc_))
        await registry.readmodel.announce(app["_id"], "secret", name, "put")
    return no_content()


@router.get("", openapi_extra=doc(answer=SecretList))
async def list_secrets(app: ApplicationDep, registry: RegistryDep) -> Response:
    """The application's secret names; values are never returned."""
    cursor = registry.store.secrets.find({"app_id": app["_id"]}, {"sealed": 0})
    items = [
        SecretInfo(name=d["name"], updated_at=parse_stamp(d["updated_at"]))
        async for d in cursor.sort("name", ASCENDING)
    ]
    return reply(SecretList(items=items))


@router.delete("/{name}", status_code=204)
async def delete_secret(name: str, app: ApplicationDep, registry: RegistryDep) -> Response:
    async with registry.writing(app["_id"]):
        deleted = await registry.store.secrets.delete_one({"_id": _secret_id(app["_id"], name)})
        if deleted.deleted_count == 0:
            raise NotFound(f"no secret {name!r} in this application")
        await registry.readmodel.delete(Names.secret(app["_id"], name))
        await registry.readmodel.announce(app["_id"], "secret", name, "delete")
    return no_content()
