"""``GET /v1/me`` and what a key of each role may do (docs/web.md, "Keys and roles")."""

from __future__ import annotations

import re

import httpx

from tests.registry.support import client, new_app
from tests.registry.test_access import assert_error
from tests.stack import Stack


async def test_me_says_what_the_credentials_are(admin: httpx.AsyncClient, registry: Stack) -> None:
    app_id, _ = await new_app(admin)
    keys = {}
    for role in ("admin", "invoke"):
        made = await admin.post(f"/v1/applications/{app_id}/api-keys", json={"role": role})
        keys[role] = made.json()

    me = await admin.get("/v1/me")
    assert me.status_code == 200, me.text
    assert me.json() == {"admin": True}
    for role, made in keys.items():
        async with client(registry, f"Api-Key {made['key']}") as as_key:
            me = await as_key.get("/v1/me")
            assert me.status_code == 200, me.text
            assert me.json() == {"app_id": app_id, "role": role, "key_id": made["id"]}

    # a revoked key is unknown at once
    revoked = keys["invoke"]
    assert (
        await admin.delete(f"/v1/applications/{app_id}/api-keys/{revoked['id']}")
    ).status_code == 204
    async with (
        client(registry) as anonymous,
        client(registry, "Bearer not-the-admin-token") as bad_token,
        client(registry, "Api-Key wk_unknown") as unknown,
        client(registry, f"Api-Key {revoked['key']}") as gone,
        client(registry, "Basic dXNlcjpwYXNz") as basic,
    ):
        for caller in (anonymous, bad_token, unknown, gone, basic):
            assert_error(await caller.get("/v1/me"), 401, "unauthorized")


async def test_an_invoke_key_is_refused_everywhere_else_in_v1(
    admin: httpx.AsyncClient, registry: Stack
) -> None:
    """Every route of the API (read from its OpenAPI document, so new ones are covered)."""
    app_id, _ = await new_app(admin)
    made = await admin.post(f"/v1/applications/{app_id}/api-keys", json={"role": "invoke"})
    spec = (await admin.get("/openapi.json")).json()
    routes = [
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if path.startswith("/v1/") and path != "/v1/me"
    ]
    assert len(routes) >= 20
    assert ("POST", "/v1/applications/{app_id}/views") in routes
    async with client(registry, f"Api-Key {made.json()['key']}") as invoker:
        for method, template in routes:
            path = template.replace("{app_id}", app_id)
            path = re.sub(r"\{[a-z_]+\}", "x", path)
            body = {} if method in ("POST", "PUT") else None
            refused = await invoker.request(method, path, json=body)
            assert_error(refused, 403, "forbidden")
            assert "role `invoke`" in refused.json()["error"]["message"], (method, path)
