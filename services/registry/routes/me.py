"""``GET /v1/me``: what the caller's credentials are (docs/web.md, "Keys and roles").

The one registry route open to keys of every role: a client (the console signing in) learns
from its key alone the application it belongs to and its role.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from services.registry.auth import IdentityDep
from services.registry.bodies import AdminIdentity, KeyIdentity, reply
from services.registry.openapi import doc

router = APIRouter(prefix="/v1", tags=["me"])


@router.get("/me", openapi_extra=doc(answer=(KeyIdentity, AdminIdentity)))
async def me(caller: IdentityDep) -> Response:
    """An API key (of any role): `{"app_id", "role", "key_id"}`; the admin token:
    `{"admin": true}`. 401 without valid credentials."""
    if caller.app_id is None or caller.key_id is None:
        return reply(AdminIdentity())
    return reply(KeyIdentity(app_id=caller.app_id, role=caller.role, key_id=caller.key_id))
