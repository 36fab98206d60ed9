"""The whole invocation path through real gateway, registry, executor, NATS and MongoDB."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from shared.schemas import event_decoder
from shared.subjects import EVENT_KIND_HEADER
from tests.integration.workload import Gateway, kind
from tests.registry.support import eventually
from tests.stack import Stack, code_worklet

pytestmark = pytest.mark.integration

GREETER = {
    "name": "greeter",
    "blocks": [
        {
            "id": "greet",
            "type": "code",
            "source": "def main(block_input, env, context):\n"
            "    context.log('greeting', block_input['name'])\n"
            "    return {'message': f\"Hello, {block_input['name']}!\"}\n",
        }
    ],
}

HELLO = {
    "name": "hello",
    "blocks": [
        {
            "id": "prepare",
            "type": "code",
            "source": "def main(block_input, env):\n"
            "    env['asked'] = block_input.get('name')\n"
            "    return {'name': (block_input.get('name') or '').strip()}\n",
            "next": "route",
        },
        {
            "id": "route",
            "type": "decision",
            "conditions": [{"when": 'input.name == ""', "next": "anonymous"}],
            "default": "greet",
        },
        {
            "id": "anonymous",
            "type": "code",
            "source": "def main():\n    return {'name': 'stranger'}\n",
            "next": "greet",
        },
        {"id": "greet", "type": "worklet", "worklet": "greeter", "next": "finish"},
        {
            "id": "finish",
            "type": "code",
            "source": "def main(block_input, env):\n"
            "    return {**block_input, 'asked': env['asked']}\n",
        },
    ],
}


class App:
    def __init__(self, stack: Stack, app_id: str, key: str, gateway: Gateway) -> None:
        self.stack, self.id, self.key, self.gateway = stack, app_id, key, gateway
        self.worklets: dict[str, str] = {}

    def registry(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.stack.registry_url,
            headers={"Authorization": f"Api-Key {self.key}"},
            timeout=30,
        )


@pytest.fixture(scope="module")
async def app(stack: Stack) -> AsyncIterator[App]:
    app_id, key = stack.create_app("integration")
    gateway = Gateway(stack, app_id, key)
    application = App(stack, app_id, key, gateway)
    for definition in (GREETER, HELLO):
        application.worklets[definition["name"]] = stack.deploy(app_id, definition)["id"]
    yield application
    await gateway.close()


async def test_synchronous_invoke_runs_every_kind_of_block(app: App) -> None:
    r = await app.gateway.invoke(app.worklets["hello"], {"name": "Ada"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    assert body["worklet_output"] == {"message": "Hello, Ada!", "asked": "Ada"}
    assert isinstance(body["latency_ms"], int) and body["run_id"]
    assert "trace" not in body

    anonymous = await app.gateway.invoke(app.worklets["hello"], {"name": "  "})
    assert anonymous.json()["worklet_output"]["message"] == "Hello, stranger!"


async def test_background_invoke_then_poll_to_succeeded(app: App) -> None:
    r = await app.gateway.invoke(app.worklets["hello"], {"name": "Grace"}, **{"async": True})
    assert r.status_code == 202
    body = r.json()
    assert body["success"] is True
    assert body["message"] == "Worklet scheduled for background execution"
    final = await app.gateway.wait(app.worklets["hello"], body["scheduled_worklet_run_id"])
    assert final["status"] == "SUCCEEDED"
    assert final["message"] == "Worklet has finished executing successfully"
    assert final["worklet_output"]["message"] == "Hello, Grace!"
    assert isinstance(final["latency_ms"], int)


async def test_trace_and_run_detail_show_every_block(app: App) -> None:
    r = await app.gateway.invoke(app.worklets["hello"], {"name": "Ada"}, trace=True)
    body = r.json()
    assert [step["block"] for step in body["trace"]] == ["prepare", "route", "greet", "finish"]
    greet = body["trace"][2]
    assert greet["output"] == {"message": "Hello, Ada!"}
    assert greet["child_run_id"]

    with app.registry() as registry:
        detail = await _eventually(registry, f"/v1/applications/{app.id}/runs/{body['run_id']}")
        assert detail["status"] == "SUCCEEDED"
        assert detail["version"] == 1
        assert detail["input"] == {"name": "Ada"}
        assert [step["block"] for step in detail["trace"]] == [
            "prepare",
            "route",
            "greet",
            "finish",
        ]
        child = await _eventually(
            registry, f"/v1/applications/{app.id}/runs/{greet['child_run_id']}"
        )
        assert child["parent_run_id"] == body["run_id"]
        assert child["trigger"] == "worklet"
        assert child["trace"][0]["logs"] == ["greeting Ada"]


async def test_a_new_version_is_recorded_on_its_runs(app: App, stack: Stack) -> None:
    definition = code_worklet("versioned", "def main():\n    return 1\n")
    worklet_id = stack.deploy(app.id, definition)["id"]
    first = (await app.gateway.invoke(worklet_id, None)).json()
    definition["blocks"][0]["source"] = "def main():\n    return 2\n"
    definition["name"] = "versioned-renamed"
    with app.registry() as registry:
        updated = registry.put(f"/v1/applications/{app.id}/worklets/{worklet_id}", json=definition)
        assert updated.status_code == 200, updated.text
        assert updated.json()["id"] == worklet_id and updated.json()["version"] == 2
    second = (await app.gateway.invoke(worklet_id, None)).json()
    assert (first["worklet_output"], second["worklet_output"]) == (1, 2)
    with app.registry() as registry:
        for run, version in ((first, 1), (second, 2)):
            detail = await _eventually(registry, f"/v1/applications/{app.id}/runs/{run['run_id']}")
            assert detail["version"] == version


async def test_a_secret_set_through_the_registry_reaches_the_code_sealed_on_the_way(
    app: App, stack: Stack
) -> None:
    source = "def main(x, env, context):\n    return context.get_secret('API_TOKEN')\n"
    worklet_id = stack.deploy(app.id, code_worklet("uses-secret", source))["id"]
    path = f"/v1/applications/{app.id}/secrets/API_TOKEN"
    for value in ("first-value", "second-value"):
        with app.registry() as registry:
            assert registry.put(path, json={"value": value}).status_code == 204

        async def seen(expected: str = value) -> bool:
            body = (await app.gateway.invoke(worklet_id, None)).json()
            return bool(body.get("worklet_output") == expected)

        # the executor follows the key-value bucket: the new value arrives within moments
        await eventually(seen, f"the code to see {value!r}", timeout=10)


async def test_user_error_answers_200_with_the_failing_block(app: App, stack: Stack) -> None:
    worklet_id = stack.deploy(app.id, code_worklet("divide", "def main(x):\n    return 1 / x\n"))[
        "id"
    ]
    r = await app.gateway.invoke(worklet_id, 0)
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is False
    assert body["error"]["type"] == "ZeroDivisionError"
    assert body["error"]["block"] == "main"
    assert body["run_id"]


async def test_sync_timeout_answers_504_and_the_run_polls_to_its_end(
    app: App, stack: Stack
) -> None:
    slow = code_worklet("slow", "import time\ndef main():\n    time.sleep(30)\n", timeout=1)
    worklet_id = stack.deploy(app.id, slow)["id"]
    r = await app.gateway.invoke(worklet_id, None)
    assert r.status_code == 504
    body = r.json()
    assert body["success"] is False and body["error"]["code"] == "timeout"
    final = await app.gateway.wait(worklet_id, body["run_id"])
    assert final["status"] == "TIMED_OUT"
    assert final["error"]["type"] == "Timeout"


async def test_events_of_an_application_can_be_followed_live(
    app: App, stack: Stack, nc: Client
) -> None:
    seen: list[str] = []
    headers: list[str | None] = []
    done = asyncio.Event()

    async def on_event(msg: Msg) -> None:
        event = event_decoder.decode(msg.data)
        if event.parent_run_id is None:
            seen.append(kind(event))
            headers.append((msg.headers or {}).get(EVENT_KIND_HEADER))
            if kind(event) == "succeeded":
                done.set()

    sub = await nc.subscribe(f"{stack.prefix}.events.{app.id}.>", cb=on_event)
    try:
        await app.gateway.invoke(app.worklets["hello"], {"name": "Ada"})
        async with asyncio.timeout(10):
            await done.wait()
    finally:
        await sub.unsubscribe()
    assert seen == ["queued", "started"] + ["block_finished"] * 4 + ["succeeded"]
    assert headers == seen  # every event says its kind in a header too, the gateway's included


async def test_keys_are_scoped_and_revocable_end_to_end(app: App, stack: Stack) -> None:
    other_app, other_key = stack.create_app("other")
    other = Gateway(stack, other_app, other_key)
    try:
        # a key of another application: the same refusal whether or not the worklet exists
        foreign = await other.client.post(
            f"/applications/{app.id}/worklets/{app.worklets['hello']}/invoke",
            json={"worklet_input": None},
        )
        missing = await other.client.post(
            f"/applications/{app.id}/worklets/doesnotexist/invoke", json={"worklet_input": None}
        )
        assert foreign.status_code == missing.status_code == 403
        assert foreign.json()["error"]["code"] == missing.json()["error"]["code"]

        with stack.admin() as admin:
            created = admin.post(f"/v1/applications/{app.id}/api-keys", json={"name": "temp"})
            temp_key, temp_id = created.json()["key"], created.json()["id"]
        temp = Gateway(stack, app.id, temp_key)
        try:
            assert (await temp.invoke(app.worklets["greeter"], {"name": "x"})).status_code == 200
            with stack.admin() as admin:
                revoked = admin.delete(f"/v1/applications/{app.id}/api-keys/{temp_id}")
                assert revoked.status_code == 204
            async with asyncio.timeout(5):
                while (
                    await temp.invoke(app.worklets["greeter"], {"name": "x"})
                ).status_code != 401:
                    await asyncio.sleep(0.05)
        finally:
            await temp.close()
    finally:
        await other.close()


async def _eventually(client: httpx.Client, path: str, timeout: float = 10) -> dict[str, Any]:
    """A run detail once the registry has recorded the run's end (it persists in batches)."""
    async with asyncio.timeout(timeout):
        while True:
            r = await asyncio.to_thread(client.get, path)
            if r.status_code == 200 and r.json()["status"] not in ("QUEUED", "RUNNING"):
                detail: dict[str, Any] = r.json()
                return detail
            await asyncio.sleep(0.05)
