"""Published views in chromium against the real stack: handlers fill components, bindings re-run
and drop stale answers, errors and background runs show, and an ``invoke`` key opens a view but
not the management API (docs/web.md)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot
from tests.browser.views_support import SLOW_SECONDS, ViewApp, make_view_app
from tests.stack import Stack

pytestmark = pytest.mark.browser

FIRST_RUN = 20_000  # ms: a worklet's first run may wait for a warm worker
# Every run the view ends (the runtime's "worklets:run" events), recorded from the page's start.
RECORD_RUNS = """
window.__runs = [];
document.addEventListener("worklets:run", (event) => window.__runs.push(event.detail));
"""


@pytest.fixture(scope="module")
def views(web_stack: Stack) -> Iterator[ViewApp]:
    yield make_view_app(web_stack)


def component(page: Page, component_id: str) -> Any:
    return page.locator(f'[data-component="{component_id}"]')


def open_view(page: Page, view: dict[str, Any], key: str) -> None:
    page.add_init_script(RECORD_RUNS)
    page.goto(f"{view['url']}#key={key}")
    expect(page.get_by_role("heading", level=1)).to_have_text(view["title"] or view["name"])


def orders_view(name: str) -> dict[str, Any]:
    """Every component type: inputs and a button, and outputs the button's handler fills."""
    return {
        "name": name,
        "title": "Orders by customer",
        "description": "Look up a customer's latest orders.",
        "components": [
            {"id": "customer", "type": "text_input", "label": "Customer", "value": "Ada"},
            {"id": "count", "type": "number_input", "label": "How many", "value": 2},
            {
                "id": "region",
                "type": "select",
                "label": "Region",
                "value": "eu",
                "options": [
                    {"label": "Europe", "value": "eu"},
                    {"label": "Americas", "value": "us"},
                ],
            },
            {"id": "refunds", "type": "checkbox", "label": "Include refunds"},
            {
                "id": "load",
                "type": "button",
                "label": "Load orders",
                "on": {
                    "click": {
                        "worklet": "orders",
                        "input": {
                            "customer": "{{customer.value}}",
                            "count": "{{count.value}}",
                            "region": "{{region.value}}",
                            "refunds": "{{refunds.value}}",
                            "note": "orders of {{customer.value}} ({{count.value}})",
                        },
                        "assign": {
                            "orders_table": "rows",
                            "total": "summary.total",
                            "raw": "summary",
                            "badge": "badge",
                            "note": "note",
                        },
                    }
                },
            },
            {"id": "note", "type": "text", "label": "Request", "value": "Nothing loaded yet"},
            {"id": "total", "type": "text", "label": "Total"},
            {
                "id": "orders_table",
                "type": "table",
                "label": "Orders",
                "columns": ["id", "customer", "region", "total"],
            },
            {"id": "raw", "type": "json", "label": "Summary"},
            {"id": "badge", "type": "image", "label": "Badge"},
        ],
    }


def test_a_button_fills_a_table_from_the_worklets_output(views: ViewApp, page: Page) -> None:
    view = views.create_view(orders_view("orders"))
    open_view(page, view, views.invoke_key)
    expect(page).to_have_title("Orders by customer")
    table = page.get_by_role("table", name="Orders")
    expect(table.locator("tbody tr")).to_have_text(["No rows"])

    page.get_by_label("Customer", exact=True).fill("Grace")
    page.get_by_label("How many").fill("3")
    page.get_by_label("Region").select_option(label="Americas")
    page.get_by_role("button", name="Load orders").click()

    rows = table.locator("tbody tr")
    expect(rows).to_have_count(3, timeout=FIRST_RUN)
    expect(table.locator("thead th")).to_have_text(["id", "customer", "region", "total"])
    expect(rows.nth(0).locator("td")).to_have_text(["1", "Grace", "us", "12.5"])
    expect(rows.nth(2).locator("td")).to_have_text(["3", "Grace", "us", "37.5"])
    expect(component(page, "total").locator(".wv-text-value")).to_have_text("75")
    # a placeholder inside a longer string is replaced by the value's text
    expect(component(page, "note")).to_contain_text("orders of Grace (3)")
    expect(page.get_by_role("region", name="Summary")).to_contain_text('"count": 3')
    expect(page.get_by_role("img", name="Badge")).to_have_attribute(
        "src", re.compile(r"^data:image/svg\+xml")
    )
    for id_ in ("load", "orders_table", "total", "raw"):
        expect(component(page, id_)).to_have_attribute("data-state", "idle")

    page.get_by_label("Include refunds").check()
    page.get_by_role("button", name="Load orders").click()
    expect(rows).to_have_count(4)
    expect(rows.nth(3).locator("td")).to_have_text(["0", "Grace", "us", "-5"])

    runs = views.runs("orders")
    assert len(runs) == 2
    assert {run["trigger"] for run in runs} == {"view"}
    screenshot(page, "view")


def test_a_binding_reruns_on_change_and_drops_a_slower_older_answer(
    views: ViewApp, page: Page
) -> None:
    view = views.create_view(
        {
            "name": "lookup",
            "components": [
                {"id": "q", "type": "text_input", "label": "Search", "value": "start"},
                {
                    "id": "answer",
                    "type": "text",
                    "label": "Answer",
                    "binding": {
                        "worklet": "lookup",
                        "input": {"q": "{{q.value}}"},
                        "path": "text",
                        "debounce_ms": 100,
                    },
                },
                {
                    "id": "details",
                    "type": "json",
                    "label": "Details",
                    # default debounce, the whole output; never slow (both workers stay free)
                    "binding": {"worklet": "lookup", "input": {"q": "details of {{q.value}}"}},
                },
            ],
        }
    )
    open_view(page, view, views.invoke_key)
    answer = component(page, "answer")
    shown = answer.locator(".wv-text-value")
    expect(shown).to_have_text("result for start", timeout=FIRST_RUN)  # the run on opening
    expect(answer).to_have_attribute("data-state", "idle")

    search = page.get_by_label("Search")
    with page.expect_request(
        lambda r: r.url.endswith("/invoke") and '"q":"slow"' in (r.post_data or "")
    ):
        search.fill("slow")
    expect(answer).to_have_attribute("data-state", "loading")
    search.fill("fast")
    expect(shown).to_have_text("result for fast", timeout=SLOW_SECONDS * 1000 - 500)
    expect(answer).to_have_attribute("data-state", "idle")

    # The slow answer arrives after the fast one, and is dropped.
    slow = "(r) => r.component === 'answer' && r.outcome === 'dropped'"
    page.wait_for_function(
        f"() => window.__runs.some({slow})", timeout=SLOW_SECONDS * 1000 + 10_000
    )
    [dropped] = page.evaluate(f"() => window.__runs.filter({slow})")
    run = views.wait_for_run(dropped["run_id"])
    assert (run["status"], run["trigger"], run["input"]) == ("SUCCEEDED", "view", {"q": "slow"})
    expect(shown).to_have_text("result for fast")
    details = page.get_by_role("region", name="Details")
    expect(details).to_contain_text('"text": "result for details of fast"')
    expect(answer).to_have_attribute("data-state", "idle")
    applied = page.evaluate(
        "() => window.__runs.filter((r) => r.component === 'answer' && r.outcome === 'applied')"
    )
    assert len(applied) == 2  # "start", then "fast": never "slow"


def test_a_failing_worklet_shows_an_error_and_leaves_the_targets(
    views: ViewApp, page: Page
) -> None:
    view = views.create_view(
        {
            "name": "failing",
            "components": [
                {"id": "name", "type": "text_input", "label": "Name", "value": "Bob"},
                {
                    "id": "go",
                    "type": "button",
                    "label": "Find",
                    "on": {
                        "click": {
                            "worklet": "fails",
                            "input": {"name": "{{name.value}}"},
                            "assign": {"out": ""},
                        }
                    },
                },
                {"id": "out", "type": "text", "label": "Result", "value": "unchanged"},
            ],
        }
    )
    open_view(page, view, views.invoke_key)
    page.get_by_role("button", name="Find").click()
    go = component(page, "go")
    expect(go).to_have_attribute("data-state", "error", timeout=FIRST_RUN)
    expect(go.locator('[data-role="error"]')).to_have_text(
        "ValueError: no such customer: Bob (block main)"
    )
    expect(component(page, "out")).to_have_attribute("data-state", "idle")
    expect(component(page, "out").locator(".wv-text-value")).to_have_text("unchanged")

    # The next click clears the error while it runs; it fails again, with the new input.
    page.get_by_label("Name").fill("Eve")
    page.get_by_role("button", name="Find").click()
    expect(go.locator('[data-role="error"]')).to_have_text(
        "ValueError: no such customer: Eve (block main)"
    )


def test_a_background_worklet_is_polled_until_it_ends(views: ViewApp, page: Page) -> None:
    view = views.create_view(
        {
            "name": "report",
            "title": "Monthly report",
            "components": [
                {"id": "pages", "type": "number_input", "label": "Pages", "value": 4},
                {
                    "id": "make",
                    "type": "button",
                    "label": "Make the report",
                    "on": {
                        "click": {
                            "worklet": "report",
                            "input": {"pages": "{{pages.value}}"},
                            "assign": {"status": "status", "result": ""},
                        }
                    },
                },
                {"id": "status", "type": "text", "label": "Status", "value": "not started"},
                {"id": "result", "type": "json", "label": "Result"},
            ],
        }
    )
    open_view(page, view, views.invoke_key)
    answers: list[tuple[str, int]] = []
    page.on("response", lambda r: answers.append((f"{r.request.method} {r.url}", r.status)))

    page.get_by_role("button", name="Make the report").click()
    status = component(page, "status")
    expect(status).to_have_attribute("data-state", "loading")
    expect(page.get_by_role("button", name="Make the report")).to_be_disabled()
    expect(status.locator(".wv-text-value")).to_have_text("done", timeout=FIRST_RUN)
    expect(status).to_have_attribute("data-state", "idle")
    expect(page.get_by_role("region", name="Result")).to_contain_text('"pages": 4')

    worklet = views.worklets["report"]
    assert (
        f"POST {views.stack.gateway_url}/applications/{views.app_id}/worklets/{worklet}/invoke",
        202,
    ) in answers
    polls = [a for a in answers if a[0].startswith("GET ") and f"/worklets/{worklet}/" in a[0]]
    assert polls and all(code == 200 for _, code in polls)
    [run] = views.runs("report")
    assert (run["status"], run["trigger"]) == ("SUCCEEDED", "view")
    assert polls[-1][0].endswith(f"/{run['run_id']}")


def test_an_invoke_key_opens_a_view_but_not_the_management_api(views: ViewApp, page: Page) -> None:
    view = views.create_view(orders_view("orders for invoke keys"))
    open_view(page, view, views.invoke_key)
    # The key left the address bar for this tab's sessionStorage.
    assert "#" not in page.url and views.invoke_key not in page.url
    stored = page.evaluate("() => Object.values(sessionStorage)")
    assert stored == [views.invoke_key]
    page.reload()
    page.get_by_role("button", name="Load orders").click()
    expect(page.get_by_role("table", name="Orders").locator("tbody tr")).to_have_count(
        2, timeout=FIRST_RUN
    )

    with httpx.Client(base_url=views.stack.registry_url, timeout=30) as client:
        headers = {"Authorization": f"Api-Key {views.invoke_key}"}
        refused = client.get(f"/v1/applications/{views.app_id}/worklets", headers=headers)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "forbidden"
        headers = {"Authorization": f"Api-Key {views.admin_key}"}
        allowed = client.get(f"/v1/applications/{views.app_id}/worklets", headers=headers)
        assert allowed.status_code == 200, allowed.text

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0


def test_signing_in_and_the_pages_refusals(views: ViewApp, page: Page) -> None:
    view = views.create_view(orders_view("orders for signing in"))
    page.goto(view["url"])
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to open this view")
    page.get_by_label("API key").fill("wk_not_a_key")
    page.get_by_role("button", name="Open view").click()
    problem = page.locator('[data-role="page-error"]')
    expect(problem).to_contain_text("This key was not accepted")
    page.get_by_role("button", name="Sign out").first.click()

    page.get_by_label("API key").fill(views.admin_key)
    page.get_by_role("button", name="Open view").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Orders by customer")
    expect(page.get_by_role("button", name="Load orders")).to_be_visible()

    # A key of another application, and a view that does not exist.
    _, other_key = views.stack.create_app("other")
    page.goto(f"{view['url']}#key={other_key}")
    expect(problem).to_contain_text("This key cannot open this view")
    page.goto(f"{views.stack.gateway_url}/views/{views.app_id}/nosuchview#key={views.admin_key}")
    expect(problem).to_contain_text("View not found")
    expect(page.get_by_role("button", name="Sign out").first).to_be_visible()
