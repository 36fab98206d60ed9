"""Browsers on a configured origin may call the invoke and poll routes."""

from __future__ import annotations

import pytest

from services.common.ids import new_run_id
from tests.gateway.conftest import ORIGIN, World

pytestmark = pytest.mark.integration


async def test_preflight_for_a_configured_origin(world: World) -> None:
    worklet = await world.add_worklet(world.app)
    for path in (
        f"/applications/{world.app}/worklets/{worklet}/invoke",
        f"/applications/{world.app}/worklets/{worklet}/{new_run_id()}",
    ):
        r = await world.http.options(
            path,
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == ORIGIN
        allowed = r.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed
        assert "content-type" in allowed
        assert "POST" in r.headers["access-control-allow-methods"]


async def test_answers_carry_the_origin(world: World) -> None:
    worklet = await world.add_worklet(world.app)
    r = await world.http.post(
        f"/applications/{world.app}/worklets/{worklet}/invoke",
        json={"worklet_input": 1},
        headers={**world.auth(world.app), "Origin": ORIGIN},
    )
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == ORIGIN


async def test_other_origins_are_not_allowed(world: World) -> None:
    worklet = await world.add_worklet(world.app)
    r = await world.http.options(
        f"/applications/{world.app}/worklets/{worklet}/invoke",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in r.headers
    r = await world.http.post(
        f"/applications/{world.app}/worklets/{worklet}/invoke",
        json={"worklet_input": 1},
        headers={**world.auth(world.app), "Origin": "https://evil.example"},
    )
    assert r.status_code == 200, r.text
    assert "access-control-allow-origin" not in r.headers
