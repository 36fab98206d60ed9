"""What the console tests share: an application with an ``admin`` key made through the registry
API, signing in, and the sidebar's items and "..." menu."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from playwright.sync_api import Locator, Page, expect

from tests.stack import Stack

FIRST_RUN = 20_000  # ms: a worklet's first run may wait for a warm worker

# Two blocks and a decision around a worklet block: what the graph draws.
GREETER: dict[str, Any] = {
    "name": "greeter",
    "description": "Says hello",
    "blocks": [
        {
            "id": "greet",
            "type": "code",
            "source": (
                "def main(block_input, env, context):\n"
                '    context.log("greeting", block_input["name"])\n'
                '    return {"message": f"Hello, {block_input[\'name\']}!"}\n'
            ),
        }
    ],
}

HELLO: dict[str, Any] = {
    "name": "hello",
    "description": "Normalises a name, then greets it through greeter",
    "blocks": [
        {
            "id": "normalise",
            "type": "code",
            "source": (
                "def main(block_input):\n"
                '    name = (block_input or {}).get("name", "").strip()\n'
                '    print("normalised", repr(name))\n'
                '    return {"name": name}\n'
            ),
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
            "source": 'def main(block_input):\n    return {"name": "stranger"}\n',
            "next": "greet",
        },
        {"id": "greet", "type": "worklet", "worklet": "greeter", "next": "sign"},
        {
            "id": "sign",
            "type": "code",
            "source": (
                "def main(block_input):\n"
                '    return {**block_input, "signed": "the Worklets team"}\n'
            ),
        },
    ],
}


@dataclass
class ConsoleApp:
    """An application of the stack and an ``admin`` key for it."""

    stack: Stack
    app_id: str
    key: str

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.stack.registry_url,
            headers={"Authorization": f"Api-Key {self.key}"},
            timeout=30,
        )

    def get(self, path: str) -> httpx.Response:
        with self.client() as client:
            return client.get(f"/v1/applications/{self.app_id}{path}")

    def deploy(self, definition: dict[str, Any]) -> dict[str, Any]:
        with self.client() as client:
            r = client.post(f"/v1/applications/{self.app_id}/worklets", json=definition)
        assert r.status_code == 201, r.text
        worklet: dict[str, Any] = r.json()
        return worklet

    def new_key(self, role: str) -> str:
        with self.stack.admin() as admin:
            r = admin.post(
                f"/v1/applications/{self.app_id}/api-keys", json={"name": role, "role": role}
            )
        assert r.status_code == 201, r.text
        key: str = r.json()["key"]
        return key


def make_console_app(stack: Stack, name: str = "console") -> ConsoleApp:
    """A fresh application and an ``admin`` key, through the registry API."""
    with stack.admin() as admin:
        app = admin.post("/v1/applications", json={"name": name})
        assert app.status_code == 201, app.text
        app_id = app.json()["id"]
        key = admin.post(
            f"/v1/applications/{app_id}/api-keys", json={"name": "console", "role": "admin"}
        )
        assert key.status_code == 201, key.text
    return ConsoleApp(stack, app_id, key.json()["key"])


def open_console(page: Page, stack: Stack) -> None:
    page.goto(f"{stack.registry_url}/console/")


def sign_in(page: Page, app: ConsoleApp, key: str | None = None) -> None:
    open_console(page, app.stack)
    page.get_by_test_id("signin-key").fill(key or app.key)
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("sidebar")).to_be_visible()


def worklet_item(page: Page, name: str) -> Locator:
    return page.locator(f'[data-testid="worklet-item"][data-name="{name}"]')


def menu_action(page: Page, name: str, action: str) -> None:
    """Open the "..." menu of worklet ``name`` in the sidebar and choose Settings, Rename or
    Delete (``action``: settings, rename, delete)."""
    item = worklet_item(page, name)
    item.hover()
    item.get_by_test_id("worklet-menu-button").click()
    menu = page.get_by_test_id("worklet-menu")
    expect(menu).to_be_visible()
    menu.get_by_test_id(f"menu-{action}").click()


def open_worklet(page: Page, name: str) -> None:
    worklet_item(page, name).get_by_role("link").click()
    expect(page.get_by_test_id("worklet-title")).to_have_text(name)
