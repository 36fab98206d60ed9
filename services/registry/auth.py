"""Who is calling: the admin token (every application) or an ``admin`` API key (its own).

``Authorization: Bearer ADMIN_TOKEN`` or ``Authorization: Api-Key KEY``. Missing or unknown
credentials are 401; an ``invoke`` key, or a key used on another application, is 403 (except on
``GET /v1/me``, which tells any valid key what it is). Keys are looked up in MongoDB by their
sha256, so a revoked key stops working at once.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from services.registry.context import RegistryDep
from services.registry.errors import Forbidden, NotFound, Unauthorized
from services.registry.store import Document
from shared.schemas import Role

KEY_PREFIX = "wk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    app_id: str | None  # None: the admin token, which may act on every application
    key_id: str | None = None
    role: Role = "admin"


async def identify(request: Request, registry: RegistryDep) -> Principal:
    """Who is calling, whatever the key's role; 401 without valid credentials."""
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.strip().partition(" ")
    credential = credential.strip()
    if not header or not credential:
        raise Unauthorized(
            "send `Authorization: Bearer ADMIN_TOKEN` or `Authorization: Api-Key KEY`"
        )
    match scheme.lower():
        case "bearer":
            expected = registry.settings.admin_token.encode()
            if not hmac.compare_digest(credential.encode(), expected):
                raise Unauthorized("the admin token is not valid")
            return Principal(app_id=None)
        case "api-key":
            doc = await registry.store.api_keys.find_one(
                {"key_hash": hash_key(credential), "revoked_at": None}
            )
            if doc is None:
                raise Unauthorized("the API key is not valid or has been revoked")
            return Principal(app_id=doc["app_id"], key_id=doc["_id"], role=doc["role"])
    raise Unauthorized(f"unknown authorization scheme `{scheme}`; use `Bearer` or `Api-Key`")


IdentityDep = Annotated[Principal, Depends(identify)]


async def principal(caller: IdentityDep) -> Principal:
    """The admin token or a key with role ``admin``; 403 for any other role."""
    if caller.role != "admin":
        raise Forbidden(
            f"a key with role `{caller.role}` cannot use the registry API; "
            "use a key with role `admin`"
        )
    return caller


PrincipalDep = Annotated[Principal, Depends(principal)]


async def admin_token(caller: PrincipalDep) -> Principal:
    if caller.app_id is not None:
        raise Forbidden("only the admin token may list or create applications")
    return caller


async def application(app_id: str, caller: PrincipalDep, registry: RegistryDep) -> Document:
    """The application in the path, if the caller may act on it (403), and it exists (404)."""
    if caller.app_id is not None and caller.app_id != app_id:
        raise Forbidden("this API key belongs to another application")
    doc = await registry.store.applications.find_one({"_id": app_id})
    if doc is None:
        raise NotFound(f"no application {app_id!r}")
    return doc


AdminTokenDep = Annotated[Principal, Depends(admin_token)]
ApplicationDep = Annotated[Document, Depends(application)]
