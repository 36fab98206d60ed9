"""The browser fixtures themselves: chromium starts and reaches a service of the stack."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.stack import Stack


def test_chromium_reaches_the_registry(web_stack: Stack, page: Page) -> None:
    page.goto(f"{web_stack.registry_url}/healthz")
    assert '"ok"' in page.text_content("body")
