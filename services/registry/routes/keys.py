"""API keys: ``wk_`` + 32 random bytes, shown once, stored only as their sha256."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pymongo import ASCENDING

from services.common.ids import new_id
from services.registry.auth import KEY_PREFIX, ApplicationDep, hash_key
from services.registry.bodies import (
    CreatedKey,
    KeyInfo,
    KeyList,
    NewKey,
    decode,
    no_content,
    read_body,
    reply,
)
from services.registry.context import RegistryDep
from services.registry.errors import InvalidRequest, NotFound
from services.registry.openapi import doc
from services.registry.readmodel import key_entry
from services.registry.store import Document, now_stamp, parse_stamp
from shared.subjects import Names

router = APIRouter(prefix="/v1/applications/{app_id}/api-keys", tags=["api keys"])

MAX_NAME = 100


def _info(doc: Document) -> KeyInfo:
    return KeyInfo(
        id=doc["_id"], name=doc["name"], role=doc["role"], created_at=parse_stamp(doc["created_at"])
    )


@router.post("", status_code=201, openapi_extra=doc(body=NewKey, answer=CreatedKey, status=201))
async def create_key(request: Request, app: ApplicationDep, registry: RegistryDep) -> Response:
    """Create a key; the answer's `key` is shown this once."""
    body = decode(await read_body(request, registry.settings.max_definition_bytes), NewKey)
    if len(body.name) > MAX_NAME or not body.name.isprintable():
        raise InvalidRequest(f"name may have at most {MAX_NAME} printable characters - at `$.name`")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    doc_ = {
        "_id": new_id(),
        "app_id": app["_id"],
        "name": body.name,
        "role": body.role,
        "key_hash": hash_key(key),
        "created_at": now_stamp(),
        "revoked_at": None,
    }
    await registry.store.api_keys.insert_one(doc_)
    await registry.readmodel.put(key_entry(doc_))
    await registry.readmodel.announce(app["_id"], "key", doc_["_id"], "put")
    info = _info(doc_)
    return reply(
        CreatedKey(id=info.id, name=info.name, role=info.role, key=key, created_at=info.created_at),
        201,
    )


@router.get("", openapi_extra=doc(answer=KeyList))
async def list_keys(app: ApplicationDep, registry: RegistryDep) -> Response:
    """The application's active keys (never the keys themselves)."""
    cursor = registry.store.api_keys.find({"app_id": app["_id"], "revoked_at": None})
    return reply(KeyList(items=[_info(d) async for d in cursor.sort("created_at", ASCENDING)]))


@router.delete("/{key_id}", status_code=204)
async def revoke_key(key_id: str, app: ApplicationDep, registry: RegistryDep) -> Response:
    """Revoke a key: it stops working at once (its read-model entry goes first)."""
    found = await registry.store.api_keys.find_one(
        {"_id": key_id, "app_id": app["_id"], "revoked_at": None}
    )
    if found is None:
        raise NotFound(f"no active API key {key_id!r} in this application")
    await registry.readmodel.delete(Names.key_entry(found["key_hash"]))
    await registry.store.api_keys.update_one(
        {"_id": key_id, "revoked_at": None}, {"$set": {"revoked_at": now_stamp()}}
    )
    await registry.readmodel.announce(app["_id"], "key", key_id, "delete")
    return no_content()
