"""Every client mistake is a JSON error with the right status, never a 500."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from services.common.ids import new_run_id
from tests.gateway.conftest import MAX_BODY, World

pytestmark = pytest.mark.integration


def _error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    message: str = body["error"]["message"]
    assert message
    return message


async def test_missing_and_malformed_authorization(world: World) -> None:
    worklet = await world.add_worklet(world.app)
    url = f"/applications/{world.app}/worklets/{worklet}/invoke"
    body = {"worklet_input": 1}
    _error(await world.http.post(url, json=body), 401, "unauthorized")
    for header in ("Bearer abc", "Api-Key", "Api-Key  x y", "abc", "Api-Keyabc"):
        r = await world.http.post(url, json=body, headers={"Authorization": header})
        _error(r, 401, "unauthorized")
    r = await world.http.get(f"/applications/{world.app}/worklets/{worklet}/{new_run_id()}")
    _error(r, 401, "unauthorized")


async def test_unknown_key(world: World) -> None:
    worklet = await world.add_worklet(world.app)
    r = await world.invoke(world.app, worklet, {"worklet_input": 1}, key="wk_not-a-key")
    assert "Unknown" in _error(r, 401, "unauthorized")


async def test_key_of_another_app_is_403_whether_the_worklet_exists_or_not(world: World) -> None:
    worklet = await world.add_worklet(world.app)
    stranger = world.keys[world.other]
    exists = await world.invoke(world.app, worklet, {"worklet_input": 1}, key=stranger)
    missing = await world.invoke(world.app, "nope", {"worklet_input": 1}, key=stranger)
    _error(exists, 403, "forbidden")
    assert exists.json() == missing.json()
    # a malformed body does not get past the key either
    r = await world.http.post(
        f"/applications/{world.app}/worklets/{worklet}/invoke",
        content=b"{",
        headers={"Authorization": f"Api-Key {stranger}"},
    )
    _error(r, 403, "forbidden")
    # nor does a poll
    r = await world.http.get(
        f"/applications/{world.app}/worklets/{worklet}/{new_run_id()}",
        headers={"Authorization": f"Api-Key {stranger}"},
    )
    _error(r, 403, "forbidden")


async def test_unknown_worklet(world: World) -> None:
    r = await world.invoke(world.app, "nope", {"worklet_input": 1})
    assert "nope" in _error(r, 404, "not_found")


@pytest.mark.parametrize(
    "path",
    [
        "/applications/a.b/worklets/w/invoke",
        "/applications/APP/worklets/*/invoke",
        "/applications/APP/worklets/%3E/invoke",
        "/applications/APP/worklets/a.b/invoke",
        "/applications/APP/worklets/w%20x/invoke",
        "/applications/APP/worklets/WORKLET/a.b",
        "/applications/APP/worklets/WORKLET/*",
        "/applications/APP/worklets/WORKLET/" + "x" * 65,
    ],
)
async def test_path_ids_that_are_not_ids_are_404(world: World, path: str) -> None:
    worklet = await world.add_worklet(world.app)
    path = path.replace("APP", world.app).replace("WORKLET", worklet)
    r = await world.http.post(path, json={"worklet_input": 1}, headers=world.auth(world.app))
    _error(r, 404, "not_found")


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (b"{", "not valid JSON"),
        (b"", "empty"),
        (b"[]", "Expected `object`, got `array`"),
        (b"{}", "missing required field `worklet_input`"),
        (b'{"worklet_input": 1, "async": "yes"}', "Expected `bool`, got `str` - at `$.async`"),
        (b'{"worklet_input": 1, "trace": 1}', "- at `$.trace`"),
        (b'{"worklet_input": 1, "extra": true}', "unknown field `extra`"),
        (b'{"worklet_input": [1, }', "not valid JSON"),
    ],
)
async def test_bad_bodies_are_422_saying_where(world: World, content: bytes, where: str) -> None:
    worklet = await world.add_worklet(world.app)
    r = await world.http.post(
        f"/applications/{world.app}/worklets/{worklet}/invoke",
        content=content,
        headers=world.auth(world.app),
    )
    assert where in _error(r, 422, "invalid_request")


async def test_body_over_the_limit_by_content_length_is_413(world: World) -> None:
    worklet = await world.add_worklet(world.app)
    payload = b'{"worklet_input": "' + b"x" * MAX_BODY + b'"}'
    r = await world.http.post(
        f"/applications/{world.app}/worklets/{worklet}/invoke",
        content=payload,
        headers=world.auth(world.app),
    )
    assert str(MAX_BODY) in _error(r, 413, "payload_too_large")
    # the same connection still serves the next request
    ok = await world.invoke(world.app, worklet, {"worklet_input": 1})
    assert ok.status_code == 200, ok.text


async def test_chunked_body_over_the_limit_is_413(world: World) -> None:
    worklet = await world.add_worklet(world.app)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"worklet_input": "'
        for _ in range(MAX_BODY // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    r = await world.http.post(
        f"/applications/{world.app}/worklets/{worklet}/invoke",
        content=chunks(),
        headers=world.auth(world.app),
    )
    assert r.request.headers["transfer-encoding"] == "chunked"
    _error(r, 413, "payload_too_large")


async def test_chunked_body_under_the_limit_is_fine(world: World) -> None:
    worklet = await world.add_worklet(world.app)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"worklet_input": '
        yield b'{"chunked": true}}'

    r = await world.http.post(
        f"/applications/{world.app}/worklets/{worklet}/invoke",
        content=chunks(),
        headers=world.auth(world.app),
    )
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert r.status_code == 200, r.text
    assert r.json()["worklet_output"] == {"echo": {"chunked": True}}


async def test_wrong_method_is_405(world: World) -> None:
    worklet = await world.add_worklet(world.app)
    base = f"/applications/{world.app}/worklets/{worklet}"
    for method, path in [
        ("DELETE", f"{base}/invoke"),
        ("GET", f"{base}/invoke"),
        ("PUT", f"{base}/{new_run_id()}"),
        ("POST", "/healthz"),
    ]:
        r = await world.http.request(method, path, headers=world.auth(world.app))
        _error(r, 405, "method_not_allowed")


async def test_unknown_route_is_404(world: World) -> None:
    for path in ("/", "/nope", f"/applications/{world.app}/worklets", "/v1/applications"):
        _error(await world.http.get(path), 404, "not_found")


async def test_revoked_key_is_refused_within_a_second(world: World) -> None:
    worklet = await world.add_worklet(world.app)
    key = await world.add_key(world.app, role="invoke")
    r = await world.invoke(world.app, worklet, {"worklet_input": 1}, key=key)
    assert r.status_code == 200, r.text
    await world.kv.delete(world.key_entry(key))
    async with asyncio.timeout(1):
        while (
            r := await world.invoke(world.app, worklet, {"worklet_input": 1}, key=key)
        ).status_code == 200:
            pass
    _error(r, 401, "unauthorized")


async def test_health(world: World) -> None:
    r = await world.http.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
