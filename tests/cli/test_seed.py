"""Seeding the demo application of ``worklets dev``: created once, then found again."""

from __future__ import annotations

import pytest

from cli.client import Registry
from cli.devstack import DEMO_APP, seed
from tests.stack import Stack

pytestmark = pytest.mark.integration


def test_seed_creates_the_demo_once_and_reuses_it(stack: Stack) -> None:
    with Registry(stack.registry_url, admin_token=stack.admin_token) as registry:
        first = seed(registry, {})
        assert {w.action for w in first.worklets.values()} == {"created"}
        assert {v.action for v in first.views.values()} == {"created"}
        [view] = first.views.values()
        assert view.url == f"http://127.0.0.1:8000/views/{first.app_id}/{view.id}"
        assert [a["id"] for a in registry.list_applications() if a["name"] == DEMO_APP] == [
            first.app_id
        ]
        previous = {"WORKLETS_APP_ID": first.app_id, "WORKLETS_API_KEY": first.api_key}

        again = seed(registry, previous)
        assert (again.app_id, again.api_key) == (first.app_id, first.api_key)
        assert {w.action for w in again.worklets.values()} == {"unchanged"}
        assert {n: w.id for n, w in again.worklets.items()} == {
            n: w.id for n, w in first.worklets.items()
        }
        assert {v.action for v in again.views.values()} == {"unchanged"}
        assert [v.id for v in again.views.values()] == [view.id]

        # a view changed by hand is put back as the demo defines it
        path = f"/v1/applications/{first.app_id}/views/{view.id}"
        current = registry.request("GET", path, (200,))["definition"]
        current["title"] = "changed"
        registry.request("PUT", path, (200,), json=current)
        restored = seed(registry, previous)
        assert [(v.id, v.action) for v in restored.views.values()] == [(view.id, "updated")]
        assert registry.request("GET", path, (200,))["definition"]["title"] == "Say hello"
        # its handlers invoke the demo worklet hello, by id
        hello = first.worklets["hello"].id
        handlers = [h for c in current["components"] for h in c.get("on", {}).values()]
        assert handlers and {h["worklet_id"] for h in handlers} == {hello}

        # dev.env lost or pointing elsewhere: the application is found by its name
        elsewhere = seed(registry, {"WORKLETS_APP_ID": "nosuchapp"})
        assert elsewhere.app_id == first.app_id

        # a revoked key is replaced
        keys = registry.request("GET", f"/v1/applications/{first.app_id}/api-keys", (200,))
        for key in keys["items"]:
            registry.request(
                "DELETE", f"/v1/applications/{first.app_id}/api-keys/{key['id']}", (204,)
            )
        renewed = seed(registry, previous)
        assert renewed.app_id == first.app_id
        assert renewed.api_key != first.api_key
