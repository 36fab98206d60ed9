"""Views through the gateway (docs/web.md, "Who serves what"): a view's definition as JSON for
any key of its application, the published page and its assets, and ``view_id`` on invoke."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

import web
from services.common.ids import new_id
from shared.schemas import Component, RunQueued, ViewDefinition, ViewEntry, encoder
from shared.subjects import Names
from tests.gateway.conftest import ORIGIN, World
from tests.registry.support import eventually
from tests.stack import Servers, Stack, code_worklet

pytestmark = pytest.mark.integration

WEB = Path(web.__file__).parent


async def add_view(world: World, app_id: str, name: str = "v") -> tuple[str, ViewDefinition]:
    """A view entry put into the read model, as the registry would."""
    view_id = new_id()
    definition = ViewDefinition(
        name=name, components=[Component(id="out", type="text", value=msgspec.Raw(b'"hi"'))]
    )
    entry = ViewEntry(
        app_id=app_id, view_id=view_id, definition=definition, updated_at=datetime.now(UTC)
    )
    await world.kv.put(Names.view(app_id, view_id), encoder.encode(entry))
    return view_id, definition


# ---------------------------------------------------------------- the definition as JSON


async def test_any_key_of_the_application_reads_a_view(world: World) -> None:
    view_id, definition = await add_view(world, world.app)
    path = f"/applications/{world.app}/views/{view_id}"
    invoke_key = await world.add_key(world.app, role="invoke")
    for key in (world.keys[world.app], invoke_key):
        answer = await world.http.get(path, headers={"Authorization": f"Api-Key {key}"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == msgspec.json.decode(encoder.encode(definition))


async def test_who_may_not_read_a_view(world: World) -> None:
    view_id, _ = await add_view(world, world.app)
    path = f"/applications/{world.app}/views/{view_id}"

    def error_of(answer: httpx.Response, status: int) -> str:
        assert answer.status_code == status, answer.text
        assert answer.json()["success"] is False
        code: str = answer.json()["error"]["code"]
        return code

    assert error_of(await world.http.get(path), 401) == "unauthorized"
    bad = {"Authorization": "Api-Key wk_unknown"}
    assert error_of(await world.http.get(path, headers=bad), 401) == "unauthorized"
    # a key of another application: 403, whether the view exists or not
    other = world.auth(world.other)
    assert error_of(await world.http.get(path, headers=other), 403) == "forbidden"
    missing = f"/applications/{world.app}/views/{new_id()}"
    assert error_of(await world.http.get(missing, headers=other), 403) == "forbidden"
    # unknown, of another application, or malformed: 404
    own = world.auth(world.app)
    assert error_of(await world.http.get(missing, headers=own), 404) == "not_found"
    elsewhere, _ = await add_view(world, world.other)
    misplaced = f"/applications/{world.app}/views/{elsewhere}"
    assert error_of(await world.http.get(misplaced, headers=own), 404) == "not_found"
    for malformed in ("a.b", "*", "x" * 65):
        url = f"/applications/{world.app}/views/{malformed}"
        assert error_of(await world.http.get(url, headers=own), 404) == "not_found"
    # only GET (and HEAD)
    answer = await world.http.post(path, headers=own)
    assert error_of(answer, 405) == "method_not_allowed"


async def test_a_deleted_view_is_gone(world: World) -> None:
    view_id, _ = await add_view(world, world.app)
    path = f"/applications/{world.app}/views/{view_id}"
    assert (await world.http.get(path, headers=world.auth(world.app))).status_code == 200
    await world.kv.delete(Names.view(world.app, view_id))

    async def gone() -> bool:
        answer = await world.http.get(path, headers=world.auth(world.app))
        return answer.status_code == 404

    await eventually(gone, "the gateway to drop the deleted view")


async def test_cors_covers_the_view_route(world: World) -> None:
    view_id, _ = await add_view(world, world.app)
    path = f"/applications/{world.app}/views/{view_id}"
    preflight = await world.http.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    answer = await world.http.get(path, headers={**world.auth(world.app), "Origin": ORIGIN})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    stranger = await world.http.get(
        path, headers={**world.auth(world.app), "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in stranger.headers


# ---------------------------------------------------------------- the page and its assets


async def test_the_view_page(world: World) -> None:
    """The page signs in by itself: served without a key, for any well-formed ids."""
    index = (WEB / "view" / "index.html").read_bytes()
    for view_id in ((await add_view(world, world.app))[0], new_id()):
        page = await world.http.get(f"/views/{world.app}/{view_id}")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-cache"
        assert page.content == index
    for path in (f"/views/{world.app}/a.b", f"/views/x%2ey/{new_id()}", f"/views/{world.app}"):
        refused = await world.http.get(path)
        assert refused.status_code == 404, path
        assert refused.json()["error"]["code"] == "not_found"


async def test_static_assets(world: World) -> None:
    """``/static/`` serves ``web/common/``, then ``web/view/``."""
    served = 0
    for section in ("common", "view"):
        for path in sorted((WEB / section).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(WEB / section).as_posix()
            if section == "view" and (WEB / "common" / relative).exists():
                continue  # common wins
            answer = await world.http.get(f"/static/{relative}")
            assert answer.status_code == 200, relative
            assert answer.content == path.read_bytes(), relative
            assert answer.headers["cache-control"] == "no-cache"
            if path.suffix == ".js":
                assert answer.headers["content-type"].startswith("text/javascript")
            served += 1
    assert served >= 3
    for path in ("/static/nope.js", "/static/../view/index.html", "/static/%2e%2e/__init__.py"):
        assert (await world.http.get(path)).status_code == 404, path


# ---------------------------------------------------------------- view_id on invoke


async def test_view_id_makes_the_trigger_view(world: World) -> None:
    worklet = await world.add_worklet(world.app)
    background = await world.add_worklet(world.app, background=True)
    seen: list[RunQueued] = []
    sub = await world.nc.subscribe(world.names.events_of_app(world.app))
    await world.nc.flush()
    try:
        for target, body, status in (
            (worklet, {"worklet_input": 1, "view_id": "v1"}, 200),
            (worklet, {"worklet_input": 1, "view_id": "v1", "async": True}, 202),
            (background, {"worklet_input": 1, "view_id": "v1"}, 202),
            (worklet, {"worklet_input": 1}, 200),
            (worklet, {"worklet_input": 1, "async": True}, 202),
        ):
            answer = await world.invoke(world.app, target, body)
            assert answer.status_code == status, answer.text
            run_id = answer.json().get("run_id") or answer.json()["scheduled_worklet_run_id"]
            while True:
                msg = await sub.next_msg(timeout=10)
                event = msgspec.json.decode(msg.data)
                if event["kind"] == "queued" and event["run_id"] == run_id:
                    seen.append(msgspec.json.decode(msg.data, type=RunQueued))
                    break
    finally:
        await sub.unsubscribe()
    assert [q.trigger for q in seen] == ["view", "view", "view", "api", "api_async"]


async def test_view_id_must_be_an_id(world: World) -> None:
    worklet = await world.add_worklet(world.app)
    for wrong in ("a.b", "", "x" * 65, "a b", 5, ["v"]):
        answer = await world.invoke(world.app, worklet, {"worklet_input": 1, "view_id": wrong})
        assert answer.status_code == 422, (wrong, answer.text)
        assert answer.json()["error"]["code"] == "invalid_request"
        assert "view_id" in answer.json()["error"]["message"]


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def full(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Every service, the registry knowing where the gateway is."""
    stack = Stack(servers, tmp_path_factory.mktemp("views"))
    stack.extra_env["WORKLETS_GATEWAY_PUBLIC_URL"] = stack.gateway_url
    with stack:
        stack.start_all()
        yield stack


@pytest.fixture
async def registry_admin(full: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=full.registry_url,
        headers={"Authorization": f"Bearer {full.admin_token}"},
        timeout=30,
    ) as client:
        yield client


async def test_a_view_saved_in_the_registry_runs_through_the_gateway(
    full: Stack, registry_admin: httpx.AsyncClient
) -> None:
    app_id, key = full.create_app()
    invoke_key = (
        await registry_admin.post(f"/v1/applications/{app_id}/api-keys", json={"role": "invoke"})
    ).json()["key"]
    greet = full.deploy(
        app_id,
        code_worklet(
            "greet",
            "def main(block_input, env, context):\n"
            "    return {'message': 'Hello, ' + block_input['name'], 'trigger': context.trigger}\n",
        ),
    )
    body: dict[str, Any] = {
        "name": "hello",
        "components": [
            {"id": "name_input", "type": "text_input", "value": "Ada"},
            {
                "id": "go",
                "type": "button",
                "on": {
                    "click": {
                        "worklet": "greet",
                        "input": {"name": "{{name_input.value}}"},
                        "assign": {"out": "message"},
                    }
                },
            },
            {"id": "out", "type": "text"},
        ],
    }
    made = await registry_admin.post(f"/v1/applications/{app_id}/views", json=body)
    assert made.status_code == 201, made.text
    view = made.json()
    assert view["url"] == f"{full.gateway_url}/views/{app_id}/{view['id']}"

    async with httpx.AsyncClient(base_url=full.gateway_url, timeout=30) as gateway:
        # the page, and the definition for a key of either role
        page = await gateway.get(view["url"])
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        for k in (key, invoke_key):
            answer = await gateway.get(
                f"/applications/{app_id}/views/{view['id']}",
                headers={"Authorization": f"Api-Key {k}"},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json() == view["definition"]
            click = answer.json()["components"][1]["on"]["click"]
            assert click["worklet_id"] == greet["id"]

        # the runtime's invoke: the run's trigger is `view`, synchronously and in the background
        invoke = f"/applications/{app_id}/worklets/{greet['id']}/invoke"
        auth = {"Authorization": f"Api-Key {invoke_key}"}
        sync = await gateway.post(
            invoke,
            json={"worklet_input": {"name": "Ada"}, "view_id": view["id"]},
            headers=auth,
        )
        assert sync.status_code == 200, sync.text
        assert sync.json()["worklet_output"] == {"message": "Hello, Ada", "trigger": "view"}
        queued = await gateway.post(
            invoke,
            json={"worklet_input": {"name": "Bo"}, "view_id": view["id"], "async": True},
            headers=auth,
        )
        assert queued.status_code == 202, queued.text
        run_ids = [sync.json()["run_id"], queued.json()["scheduled_worklet_run_id"]]

        async def recorded(run_id: str) -> dict[str, Any] | None:
            answer = await registry_admin.get(f"/v1/applications/{app_id}/runs/{run_id}")
            if answer.status_code != 200 or answer.json()["status"] != "SUCCEEDED":
                return None
            found: dict[str, Any] = answer.json()
            return found

        for run_id in run_ids:
            run = await eventually(lambda r=run_id: recorded(r), f"run {run_id} recorded")
            assert run["trigger"] == "view"
            assert run["worklet_output"]["trigger"] == "view"

        # deleted in the registry: gone from the gateway
        deleted = await registry_admin.delete(f"/v1/applications/{app_id}/views/{view['id']}")
        assert deleted.status_code == 204

        async def gone() -> bool:
            answer = await gateway.get(
                f"/applications/{app_id}/views/{view['id']}",
                headers={"Authorization": f"Api-Key {key}"},
            )
            return answer.status_code == 404

        await eventually(gone, "the view to be gone from the gateway")
