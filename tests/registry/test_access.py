"""Applications, API keys and who may do what (docs/api.md, "Registry")."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import msgspec
from nats.js.kv import KeyValue
from pymongo.asynchronous.database import AsyncDatabase

from shared.schemas import ApiKeyEntry
from shared.subjects import Names
from tests.registry.support import client, kv_value, new_app
from tests.stack import Stack

Database = AsyncDatabase[dict[str, Any]]


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    error: dict[str, Any] = body["error"]
    assert error["message"]
    return error


async def test_applications(admin: httpx.AsyncClient) -> None:
    created = await admin.post("/v1/applications", json={"name": "shop"})
    assert created.status_code == 201
    app = created.json()
    assert set(app) == {"id", "name", "created_at"}
    assert app["name"] == "shop"

    assert (await admin.get(f"/v1/applications/{app['id']}")).json() == app
    listed = (await admin.get("/v1/applications")).json()["items"]
    assert app in listed

    assert_error(await admin.get("/v1/applications/nope"), 404, "not_found")
    assert_error(await admin.post("/v1/applications", json={"name": ""}), 422, "invalid_request")
    wrong = assert_error(
        await admin.post("/v1/applications", json={"name": 5}), 422, "invalid_request"
    )
    assert wrong["message"] == "Expected `str`, got `int` - at `$.name`"
    assert_error(await admin.post("/v1/applications", json={}), 422, "invalid_request")


async def test_key_is_shown_once_and_stored_hashed(
    admin: httpx.AsyncClient, registry: Stack, mongo: Database, kv: KeyValue
) -> None:
    app_id, _ = await new_app(admin)
    created = await admin.post(
        f"/v1/applications/{app_id}/api-keys", json={"name": "ci", "role": "invoke"}
    )
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"id", "name", "role", "key", "created_at"}
    assert body["key"].startswith("wk_") and len(body["key"]) > 40
    assert (body["name"], body["role"]) == ("ci", "invoke")

    listed = (await admin.get(f"/v1/applications/{app_id}/api-keys")).json()["items"]
    mine = [k for k in listed if k["id"] == body["id"]]
    assert mine == [
        {"id": body["id"], "name": "ci", "role": "invoke", "created_at": body["created_at"]}
    ]

    digest = hashlib.sha256(body["key"].encode()).hexdigest()
    stored = await mongo["api_keys"].find_one({"_id": body["id"]})
    assert stored is not None and stored["key_hash"] == digest
    assert body["key"] not in str(stored)
    entry = await kv_value(kv, Names.key_entry(digest))
    assert entry is not None
    assert msgspec.json.decode(entry, type=ApiKeyEntry) == ApiKeyEntry(
        key_id=body["id"], app_id=app_id, role="invoke"
    )


async def test_revoke_stops_the_key_at_once(
    admin: httpx.AsyncClient, registry: Stack, kv: KeyValue, mongo: Database
) -> None:
    app_id, _ = await new_app(admin)
    created = (await admin.post(f"/v1/applications/{app_id}/api-keys", json={})).json()
    assert created["role"] == "admin" and created["name"] == ""
    digest = hashlib.sha256(created["key"].encode()).hexdigest()
    async with client(registry, f"Api-Key {created['key']}") as own:
        assert (await own.get(f"/v1/applications/{app_id}")).status_code == 200
        assert (
            await admin.delete(f"/v1/applications/{app_id}/api-keys/{created['id']}")
        ).status_code == 204
        assert await kv_value(kv, Names.key_entry(digest)) is None
        assert_error(await own.get(f"/v1/applications/{app_id}"), 401, "unauthorized")
    listed = (await admin.get(f"/v1/applications/{app_id}/api-keys")).json()["items"]
    assert created["id"] not in [k["id"] for k in listed]
    stored = await mongo["api_keys"].find_one({"_id": created["id"]})
    assert stored is not None and isinstance(stored["revoked_at"], str)
    again = await admin.delete(f"/v1/applications/{app_id}/api-keys/{created['id']}")
    assert_error(again, 404, "not_found")


async def test_scoping(admin: httpx.AsyncClient, registry: Stack) -> None:
    app_id, key = await new_app(admin)
    other_id, other_key = await new_app(admin)
    invoke_key = (
        await admin.post(f"/v1/applications/{app_id}/api-keys", json={"role": "invoke"})
    ).json()["key"]
    paths = [
        f"/v1/applications/{app_id}",
        f"/v1/applications/{app_id}/api-keys",
        f"/v1/applications/{app_id}/worklets",
        f"/v1/applications/{app_id}/secrets",
        f"/v1/applications/{app_id}/runs",
    ]
    async with (
        client(registry) as anonymous,
        client(registry, "Bearer not-the-admin-token") as bad_token,
        client(registry, "Api-Key wk_unknown") as unknown,
        client(registry, "Basic dXNlcjpwYXNz") as basic,
        client(registry, f"Api-Key {key}") as own,
        client(registry, f"Api-Key {other_key}") as other,
        client(registry, f"Api-Key {invoke_key}") as invoker,
    ):
        for path in paths:
            assert (await admin.get(path)).status_code == 200, path
            assert (await own.get(path)).status_code == 200, path
            for caller in (anonymous, bad_token, unknown, basic):
                assert_error(await caller.get(path), 401, "unauthorized")
            assert_error(await other.get(path), 403, "forbidden")
            assert_error(await invoker.get(path), 403, "forbidden")
        # a key of another application cannot even learn whether an application exists
        assert_error(await own.get("/v1/applications/doesnotexist"), 403, "forbidden")
        assert_error(await admin.get("/v1/applications/doesnotexist"), 404, "not_found")
        # listing and creating applications is for the admin token only
        assert_error(await own.get("/v1/applications"), 403, "forbidden")
        assert_error(await own.post("/v1/applications", json={"name": "x"}), 403, "forbidden")
        assert_error(
            await invoker.post(f"/v1/applications/{app_id}/api-keys", json={}), 403, "forbidden"
        )
        # an admin key manages its own application's keys
        made = await own.post(f"/v1/applications/{app_id}/api-keys", json={"name": "more"})
        assert made.status_code == 201
        assert_error(
            await other.delete(f"/v1/applications/{app_id}/api-keys/{made.json()['id']}"),
            403,
            "forbidden",
        )
        # the admin token sees every application
        listed = {a["id"] for a in (await admin.get("/v1/applications")).json()["items"]}
        assert {app_id, other_id} <= listed


async def test_errors_are_json(admin: httpx.AsyncClient, app: tuple[str, str]) -> None:
    app_id, _ = app
    missing = assert_error(await admin.get("/v1/nothing/here"), 404, "not_found")
    assert "/v1/nothing/here" in missing["message"]
    assert_error(await admin.patch(f"/v1/applications/{app_id}"), 405, "method_not_allowed")
    bad_query = assert_error(
        await admin.get(f"/v1/applications/{app_id}/runs?limit=0"), 422, "invalid_request"
    )
    assert "query.limit" in bad_query["message"]
    malformed = await admin.post(
        "/v1/applications", content=b'{"name": "x",}', headers={"content-type": "application/json"}
    )
    assert "byte" in assert_error(malformed, 422, "invalid_request")["message"]
    assert_error(await admin.post("/v1/applications", content=b""), 422, "invalid_request")
    assert_error(await admin.post("/v1/applications", json=["name"]), 422, "invalid_request")


async def test_health_and_docs(registry: Stack) -> None:
    async with client(registry) as anonymous:
        assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
        assert (await anonymous.get("/docs")).status_code == 200
        spec = (await anonymous.get("/openapi.json")).json()
    post = spec["paths"]["/v1/applications/{app_id}/worklets"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Definition"
    }
    schemas = spec["components"]["schemas"]
    assert {"Definition", "CodeBlock", "DecisionBlock", "WorkletBlock", "ErrorResponse"} <= set(
        schemas
    )
