"""Worklets with their versions, secrets, and the read model each call keeps current."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import msgspec
import pytest
from nats.aio.client import Client
from nats.js.kv import KeyValue
from pymongo.asynchronous.database import AsyncDatabase

from services.common.sealing import Sealer
from shared.schemas import ChangeNotice, SecretEntry, WorkletHead, WorkletSettings, WorkletVersion
from shared.subjects import Names
from tests.registry.definitions import BAD, Bad, code, definition, hello
from tests.registry.support import client, kv_value
from tests.registry.test_access import assert_error
from tests.stack import Stack

Database = AsyncDatabase[dict[str, Any]]


async def head_of(kv: KeyValue, app_id: str, worklet_id: str) -> WorkletHead | None:
    value = await kv_value(kv, Names.worklet_head(app_id, worklet_id))
    return None if value is None else msgspec.json.decode(value, type=WorkletHead)


async def version_of(kv: KeyValue, app_id: str, worklet_id: str, n: int) -> WorkletVersion | None:
    value = await kv_value(kv, Names.worklet_version(app_id, worklet_id, n))
    return None if value is None else msgspec.json.decode(value, type=WorkletVersion)


async def test_worklet_lifecycle(
    admin: httpx.AsyncClient, app: tuple[str, str], kv: KeyValue, registry: Stack
) -> None:
    app_id, key = app
    base = f"/v1/applications/{app_id}/worklets"
    greeter = await admin.post(base, json=definition("greeter"))
    assert greeter.status_code == 201, greeter.text
    greeter_id = greeter.json()["id"]

    created = await admin.post(base, json=hello())
    assert created.status_code == 201, created.text
    w = created.json()
    assert set(w) == {
        "id",
        "app_id",
        "name",
        "version",
        "settings",
        "definition",
        "created_at",
        "updated_at",
    }
    assert (w["app_id"], w["name"], w["version"]) == (app_id, "hello", 1)
    assert w["settings"] == {"timeout": 300.0, "background_timeout": 3600.0}
    greet = w["definition"]["blocks"][3]
    assert (greet["worklet"], greet["worklet_id"]) == ("greeter", greeter_id)

    head = await head_of(kv, app_id, w["id"])
    assert head == WorkletHead(
        app_id=app_id,
        worklet_id=w["id"],
        name="hello",
        version=1,
        settings=WorkletSettings(timeout=300, background_timeout=3600),
    )
    v1 = await version_of(kv, app_id, w["id"], 1)
    assert v1 is not None and v1.definition.name == "hello" and len(v1.definition.blocks) == 4

    # a rename keeps the id and makes version 2
    renamed = hello()
    renamed["name"] = "hello-v2"
    renamed["settings"] = {"background": True}
    async with client(registry, f"Api-Key {key}") as own:  # an admin key of the application
        updated = await own.put(f"{base}/{w['id']}", json=renamed)
    assert updated.status_code == 200, updated.text
    assert (updated.json()["id"], updated.json()["version"], updated.json()["name"]) == (
        w["id"],
        2,
        "hello-v2",
    )
    assert updated.json()["settings"] == {"background": True}
    assert updated.json()["created_at"] == w["created_at"]

    head = await head_of(kv, app_id, w["id"])
    assert head is not None and (head.name, head.version, head.settings.background) == (
        "hello-v2",
        2,
        True,
    )
    assert (await version_of(kv, app_id, w["id"], 2)) is not None
    assert (await version_of(kv, app_id, w["id"], 1)) == v1  # versions are immutable

    current = (await admin.get(f"{base}/{w['id']}")).json()
    assert (current["version"], current["name"]) == (2, "hello-v2")
    first = (await admin.get(f"{base}/{w['id']}", params={"version": 1})).json()
    assert (first["version"], first["name"], first["definition"]["name"]) == (1, "hello", "hello")
    by_name = (await admin.get(f"{base}/hello-v2")).json()
    assert by_name["id"] == w["id"]
    assert_error(await admin.get(f"{base}/{w['id']}", params={"version": 3}), 404, "not_found")
    assert_error(
        await admin.get(f"{base}/{w['id']}", params={"version": 0}), 422, "invalid_request"
    )

    versions = (await admin.get(f"{base}/{w['id']}/versions")).json()["items"]
    assert [(v["version"], v["name"]) for v in versions] == [(2, "hello-v2"), (1, "hello")]

    listed = (await admin.get(base)).json()["items"]
    assert [(i["name"], i["version"]) for i in listed] == [("greeter", 1), ("hello-v2", 2)]
    assert set(listed[0]) == {"id", "name", "version", "settings", "created_at", "updated_at"}

    # names are unique per application, also on rename
    assert_error(await admin.post(base, json=definition("greeter")), 409, "conflict")
    assert_error(await admin.put(f"{base}/{w['id']}", json=definition("greeter")), 409, "conflict")
    assert (await admin.get(f"{base}/{w['id']}")).json()["version"] == 2

    # delete: the head goes, versions stay for runs already queued
    assert (await admin.delete(f"{base}/{w['id']}")).status_code == 204
    assert await head_of(kv, app_id, w["id"]) is None
    assert await version_of(kv, app_id, w["id"], 2) is not None
    assert_error(await admin.get(f"{base}/{w['id']}"), 404, "not_found")
    assert_error(await admin.delete(f"{base}/{w['id']}"), 404, "not_found")
    assert_error(await admin.put(f"{base}/{w['id']}", json=hello()), 404, "not_found")
    # the name is free again, with a new id
    again = await admin.post(base, json=hello())
    assert again.status_code == 201 and again.json()["id"] != w["id"]


async def test_same_name_in_two_applications(admin: httpx.AsyncClient) -> None:
    ids = []
    for _ in range(2):
        app_id = (await admin.post("/v1/applications", json={"name": "a"})).json()["id"]
        made = await admin.post(f"/v1/applications/{app_id}/worklets", json=definition("same"))
        assert made.status_code == 201
        ids.append(made.json()["id"])
    assert ids[0] != ids[1]


async def test_worklet_block_only_sees_its_own_application(admin: httpx.AsyncClient) -> None:
    first = (await admin.post("/v1/applications", json={"name": "a"})).json()["id"]
    second = (await admin.post("/v1/applications", json={"name": "b"})).json()["id"]
    target = (
        await admin.post(f"/v1/applications/{first}/worklets", json=definition("target"))
    ).json()
    caller = definition("caller", {"id": "call", "type": "worklet", "worklet": target["id"]})
    refused = await admin.post(f"/v1/applications/{second}/worklets", json=caller)
    assert assert_error(refused, 422, "invalid_definition")["block"] == "call"
    accepted = await admin.post(f"/v1/applications/{first}/worklets", json=caller)
    assert accepted.json()["definition"]["blocks"][0]["worklet_id"] == target["id"]


@pytest.mark.parametrize("case", BAD, ids=lambda b: b.rule)
async def test_bad_definition_is_refused_and_nothing_stored(
    case: Bad, admin: httpx.AsyncClient, app: tuple[str, str], kv: KeyValue, mongo: Database
) -> None:
    app_id, _ = app
    base = f"/v1/applications/{app_id}/worklets"
    existing = (await admin.post(base, json=definition("existing"))).json()
    before = await mongo["worklet_versions"].count_documents({"app_id": app_id})

    for method, path in (("POST", base), ("PUT", f"{base}/{existing['id']}")):
        refused = await admin.request(method, path, json=case.body)
        error = assert_error(refused, 422, "invalid_definition")
        assert case.says in error["message"], error
        assert error.get("block") == case.block, error

    assert await mongo["worklet_versions"].count_documents({"app_id": app_id}) == before
    assert [w["id"] for w in (await admin.get(base)).json()["items"]] == [existing["id"]]
    assert (await admin.get(f"{base}/{existing['id']}")).json()["version"] == 1
    head = await head_of(kv, app_id, existing["id"])
    assert head is not None and head.version == 1
    assert await version_of(kv, app_id, existing["id"], 2) is None


async def test_malformed_and_oversized_bodies(
    admin: httpx.AsyncClient, app: tuple[str, str], mongo: Database
) -> None:
    app_id, _ = app
    base = f"/v1/applications/{app_id}/worklets"
    malformed = await admin.post(base, content=b'{"name": "w", "blocks": [}')
    assert "not valid JSON" in assert_error(malformed, 422, "invalid_definition")["message"]
    assert "byte" in malformed.json()["error"]["message"]
    truncated = await admin.post(base, content=b'{"name": "w", "blocks": [')
    assert_error(truncated, 422, "invalid_definition")
    assert_error(await admin.post(base, content=b""), 422, "invalid_definition")

    # WORKLETS_MAX_DEFINITION_BYTES is 1 MiB by default
    padding = "# " + "x" * (1024 * 1024) + "\n"
    huge = definition("huge", code("a", padding + "def main():\n    return 1\n"))
    assert_error(await admin.post(base, json=huge), 413, "payload_too_large")

    async def chunks() -> Any:
        for _ in range(5):
            yield b" " * (300 * 1024)  # no Content-Length: sent chunked

    assert_error(await admin.post(base, content=chunks()), 413, "payload_too_large")
    assert await mongo["worklets"].count_documents({"app_id": app_id}) == 0


async def test_secrets(
    admin: httpx.AsyncClient, app: tuple[str, str], kv: KeyValue, mongo: Database, registry: Stack
) -> None:
    app_id, _ = app
    base = f"/v1/applications/{app_id}/secrets"
    assert (await admin.put(f"{base}/OPENAI_KEY", json={"value": "sk-first"})).status_code == 204
    assert (await admin.put(f"{base}/OPENAI_KEY", json={"value": "sk-second"})).status_code == 204
    assert (await admin.put(f"{base}/db_url", json={"value": "postgres://"})).status_code == 204

    listed = await admin.get(base)
    assert [s["name"] for s in listed.json()["items"]] == ["OPENAI_KEY", "db_url"]
    assert set(listed.json()["items"][0]) == {"name", "updated_at"}
    assert "sk-" not in listed.text
    assert await mongo["secrets"].count_documents({"app_id": app_id}) == 2

    # sealed wherever it is stored; the executor's key opens it
    entry = await kv_value(kv, Names.secret(app_id, "OPENAI_KEY"))
    assert entry is not None and b"sk-" not in entry
    decoded = msgspec.json.decode(entry, type=SecretEntry)
    assert (decoded.app_id, decoded.name) == (app_id, "OPENAI_KEY")
    assert Sealer(registry.secrets_key).open(app_id, "OPENAI_KEY", decoded.sealed) == "sk-second"
    stored = await mongo["secrets"].find_one({"app_id": app_id, "name": "OPENAI_KEY"})
    assert stored is not None and "value" not in stored and "sk-" not in str(stored)
    assert stored["sealed"] == decoded.sealed

    assert (await admin.delete(f"{base}/OPENAI_KEY")).status_code == 204
    assert await kv_value(kv, Names.secret(app_id, "OPENAI_KEY")) is None
    assert [s["name"] for s in (await admin.get(base)).json()["items"]] == ["db_url"]
    assert_error(await admin.delete(f"{base}/OPENAI_KEY"), 404, "not_found")
    assert_error(await admin.put(f"{base}/bad.name", json={"value": "x"}), 422, "invalid_request")
    assert_error(await admin.put(f"{base}/ok", json={"value": 1}), 422, "invalid_request")
    assert_error(await admin.put(f"{base}/ok", json={"val": "x"}), 422, "invalid_request")


async def test_changes_are_broadcast(
    admin: httpx.AsyncClient, app: tuple[str, str], nc: Client, registry: Stack
) -> None:
    app_id, _ = app
    notices: asyncio.Queue[ChangeNotice] = asyncio.Queue()

    async def collect(msg: Any) -> None:
        await notices.put(msgspec.json.decode(msg.data, type=ChangeNotice))

    sub = await nc.subscribe(Names(registry.prefix).changes(app_id), cb=collect)
    await nc.flush()
    try:
        base = f"/v1/applications/{app_id}"
        worklet = (await admin.post(f"{base}/worklets", json=definition("n"))).json()
        await admin.put(f"{base}/worklets/{worklet['id']}", json=definition("n"))
        await admin.delete(f"{base}/worklets/{worklet['id']}")
        await admin.put(f"{base}/secrets/S", json={"value": "v"})
        await admin.delete(f"{base}/secrets/S")
        made = (await admin.post(f"{base}/api-keys", json={})).json()
        await admin.delete(f"{base}/api-keys/{made['id']}")
        expected = [
            ("worklet", worklet["id"], "put"),
            ("worklet", worklet["id"], "put"),
            ("worklet", worklet["id"], "delete"),
            ("secret", "S", "put"),
            ("secret", "S", "delete"),
            ("key", made["id"], "put"),
            ("key", made["id"], "delete"),
        ]
        seen: list[tuple[str, str, str]] = []
        async with asyncio.timeout(10):
            while len(seen) < len(expected):
                notice = await notices.get()
                assert notice.app_id == app_id
                seen.append((notice.kind, notice.id, notice.action))
        assert seen == expected
    finally:
        await sub.unsubscribe()


async def test_concurrent_writes_keep_versions_and_read_model_in_step(
    admin: httpx.AsyncClient, app: tuple[str, str], kv: KeyValue, mongo: Database
) -> None:
    app_id, _ = app
    base = f"/v1/applications/{app_id}/worklets"
    w = (await admin.post(base, json=definition("v0"))).json()
    answers = await asyncio.gather(
        *(admin.put(f"{base}/{w['id']}", json=definition(f"v{i}")) for i in range(1, 9))
    )
    codes = [a.status_code for a in answers]
    assert set(codes) <= {200, 409} and 200 in codes
    current = (await admin.get(f"{base}/{w['id']}")).json()
    assert current["version"] == 1 + codes.count(200)
    versions = (await admin.get(f"{base}/{w['id']}/versions")).json()["items"]
    assert [v["version"] for v in versions] == list(range(current["version"], 0, -1))
    head = await head_of(kv, app_id, w["id"])
    assert head is not None and (head.version, head.name) == (current["version"], current["name"])

    secrets = f"/v1/applications/{app_id}/secrets/RACE"
    await asyncio.gather(*(admin.put(secrets, json={"value": f"value-{i}"}) for i in range(10)))
    stored = await mongo["secrets"].find_one({"app_id": app_id, "name": "RACE"})
    entry = await kv_value(kv, Names.secret(app_id, "RACE"))
    assert stored is not None and entry is not None
    assert msgspec.json.decode(entry, type=SecretEntry).sealed == stored["sealed"]
