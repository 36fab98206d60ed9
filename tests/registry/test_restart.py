"""A registry restart keeps everything, repairs the read model, and catches up on events."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client
from pymongo import AsyncMongoClient

from services.common.sealing import Sealer, new_key
from shared.schemas import ApiKeyEntry, SecretEntry, Status, WorkletHead, encoder
from shared.subjects import REGISTRY_CONSUMER, Names
from tests.registry.definitions import definition
from tests.registry.support import client, eventually, kv_entries, new_app, publish
from tests.registry.test_runs import Run
from tests.stack import Servers, Stack


@pytest.fixture
def own_registry(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(servers, tmp_path_factory.mktemp("restart")) as stack:
        stack.start("registry")
        yield stack


def restart(stack: Stack) -> None:
    stack.processes["registry"].stop()
    stack.start("registry")


async def test_restart_keeps_everything_and_rebuilds_the_read_model(
    own_registry: Stack, nc: Client
) -> None:
    stack = own_registry
    names = Names(stack.prefix)
    kv = await nc.jetstream().key_value(names.index_bucket)
    async with client(stack, f"Bearer {stack.admin_token}") as admin:
        app_id, key = await new_app(admin)
        base = f"/v1/applications/{app_id}"
        worklet = (await admin.post(f"{base}/worklets", json=definition("w"))).json()
        await admin.put(f"{base}/worklets/{worklet['id']}", json=definition("w2"))
        await admin.put(f"{base}/secrets/TOKEN", json={"value": "s3cret"})
        revoked = (await admin.post(f"{base}/api-keys", json={})).json()
        await admin.delete(f"{base}/api-keys/{revoked['id']}")
        gone = (await admin.post(f"{base}/worklets", json=definition("gone"))).json()
        await admin.delete(f"{base}/worklets/{gone['id']}")
        before = {
            path: (await admin.get(f"{base}{path}")).json()
            for path in ("", "/worklets", "/api-keys", "/secrets")
        }
        run = Run(app_id, worklet["id"])
        await publish(nc, stack.prefix, *run.all())
        await eventually(
            lambda: _status(admin, f"{base}/runs/{run.run_id}", "SUCCEEDED"),
            "the run to be recorded",
        )
        entries = await kv_entries(kv, nc, stack.prefix)

    # damage the read model by hand: lose entries, and leave entries MongoDB does not have
    key_entry = next(k for k in entries if k.startswith("key."))
    head_entry = names.worklet_head(app_id, worklet["id"])
    await kv.delete(key_entry)
    await kv.purge(head_entry)
    await kv.delete(names.secret(app_id, "TOKEN"))
    await kv.delete(names.worklet_version(app_id, worklet["id"], 2))
    stale = ApiKeyEntry(key_id=revoked["id"], app_id=app_id, role="admin")
    await kv.put(Names.key_entry("0" * 64), encoder.encode(stale))
    stale_head = WorkletHead(app_id=app_id, worklet_id=gone["id"], name="gone", version=1)
    await kv.put(names.worklet_head(app_id, gone["id"]), encoder.encode(stale_head))
    # and events arrive while the registry is down
    stack.processes["registry"].stop()
    late = Run(app_id, worklet["id"])
    await publish(nc, stack.prefix, *late.all())
    stack.start("registry")

    assert await kv_entries(kv, nc, stack.prefix) == entries
    head = msgspec.json.decode(entries[head_entry], type=WorkletHead)
    assert (head.name, head.version) == ("w2", 2)
    async with client(stack, f"Bearer {stack.admin_token}") as admin:
        after = {
            path: (await admin.get(f"{base}{path}")).json()
            for path in ("", "/worklets", "/api-keys", "/secrets")
        }
        assert after == before
        versions = (await admin.get(f"{base}/worklets/{worklet['id']}/versions")).json()["items"]
        assert [v["version"] for v in versions] == [2, 1]
        assert await _status(admin, f"{base}/runs/{run.run_id}", "SUCCEEDED")
        await eventually(
            lambda: _status(admin, f"{base}/runs/{late.run_id}", "SUCCEEDED"),
            "the run published during the restart to be recorded",
        )
    async with client(stack, f"Api-Key {key}") as own:
        assert (await own.get(base)).status_code == 200
    async with client(stack, f"Api-Key {revoked['key']}") as old:
        assert (await old.get(base)).status_code == 401

    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.servers.mongo_url)
    try:
        doc = await mongo[stack.prefix]["runs"].find_one({"_id": late.run_id})
        assert doc is not None and doc["status"] == Status.SUCCEEDED
    finally:
        await mongo.close()


async def test_secrets_are_sealed_again_under_the_current_key_at_start(
    own_registry: Stack, nc: Client
) -> None:
    """Values stored in plain text by an earlier version, and values sealed under a previous
    key (a rotation): the next start seals them under the current key."""
    stack = own_registry
    names = Names(stack.prefix)
    kv = await nc.jetstream().key_value(names.index_bucket)
    async with client(stack, f"Bearer {stack.admin_token}") as admin:
        app_id, _ = await new_app(admin)
        put = await admin.put(f"/v1/applications/{app_id}/secrets/ROTATED", json={"value": "r"})
        assert put.status_code == 204
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.servers.mongo_url)
    try:
        secrets = mongo[stack.prefix]["secrets"]
        legacy = {"app_id": app_id, "name": "OLD", "value": "plain", "updated_at": "x"}
        await secrets.insert_one({"_id": f"{app_id}/OLD", **legacy})
        restart(stack)
        old = await secrets.find_one({"_id": f"{app_id}/OLD"})
        assert old is not None and "value" not in old
        assert Sealer(stack.secrets_key).open(app_id, "OLD", old["sealed"]) == "plain"
        entry = (await kv.get(names.secret(app_id, "OLD"))).value
        assert entry is not None and b"plain" not in entry
        assert msgspec.json.decode(entry, type=SecretEntry).sealed == old["sealed"]

        # rotation: a new key, the old one as a previous key
        previous, current = stack.secrets_key, new_key()
        stack.processes["registry"].stop()
        stack.start(
            "registry",
            WORKLETS_SECRETS_KEY=current,
            WORKLETS_SECRETS_PREVIOUS_KEYS=json.dumps([previous]),
        )
        for name, value in (("OLD", "plain"), ("ROTATED", "r")):
            doc = await secrets.find_one({"_id": f"{app_id}/{name}"})
            assert doc is not None
            assert Sealer(current).open(app_id, name, doc["sealed"]) == value
            entry = (await kv.get(names.secret(app_id, name))).value
            assert entry is not None
            assert msgspec.json.decode(entry, type=SecretEntry).sealed == doc["sealed"]
    finally:
        await mongo.close()


async def _status(admin: Any, path: str, status: str) -> bool:
    answer = await admin.get(path)
    return bool(answer.status_code == 200 and answer.json()["status"] == status)


async def _delivered(nc: Client, stack: Stack) -> None:
    """Wait until the registry has been sent every event of the stream. Those of a run that
    has not ended stay unacked in its memory (held) for a few seconds after that."""
    names = Names(stack.prefix)
    js = nc.jetstream()

    async def delivered() -> bool:
        info = await js.consumer_info(names.events_stream, REGISTRY_CONSUMER)
        return bool(info.num_pending == 0)

    await eventually(delivered, "the registry to receive the events")


async def _record(stack: Stack, run_id: str, timeout: float = 15) -> dict[str, Any]:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.servers.mongo_url)
    try:
        return await eventually(
            lambda: mongo[stack.prefix]["runs"].find_one({"_id": run_id}),
            f"run {run_id} to be recorded",
            timeout,
        )
    finally:
        await mongo.close()


async def test_stopping_writes_the_runs_held(own_registry: Stack, nc: Client) -> None:
    stack = own_registry
    run = Run("app1", "wk1")
    await publish(nc, stack.prefix, run.queued(), run.started())
    await _delivered(nc, stack)
    stack.processes["registry"].stop()
    doc = await _record(stack, run.run_id, timeout=1)  # written before it exited
    assert (doc["status"], doc["attempts"]) == (Status.RUNNING, 1)


async def test_runs_held_by_a_crashed_registry_are_recorded(
    own_registry: Stack, nc: Client
) -> None:
    stack = own_registry
    run = Run("app1", "wk1")
    await publish(nc, stack.prefix, run.queued(), run.started())
    await _delivered(nc, stack)
    registry = stack.processes["registry"]
    registry.kill(signal.SIGKILL)
    registry.popen.wait(10)
    stack.start("registry")
    await publish(nc, stack.prefix, run.succeeded())

    # the held events come back once their ack wait (30 s) has passed
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.servers.mongo_url)

    async def complete() -> dict[str, Any] | None:
        doc = await mongo[stack.prefix]["runs"].find_one({"_id": run.run_id})
        return doc if doc and doc.get("queued_at") and doc.get("started_at") else None

    try:
        doc = await eventually(complete, "the held events to be redelivered", timeout=90)
    finally:
        await mongo.close()
    assert (doc["status"], doc["queued_at"], doc["started_at"]) == (
        Status.SUCCEEDED,
        "2026-01-31T12:00:00.000000Z",
        "2026-01-31T12:00:01.000000Z",
    )
