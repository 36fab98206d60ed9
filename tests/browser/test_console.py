"""The web console in chromium against the real stack (docs/web.md, "The console"): signing in,
creating and testing a worklet, scheduling it from the Settings dialog (the clock icon), the
"..." menu, definition and schedule errors shown where they are, a background run followed to
its end, and views with their live preview."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import screenshot
from tests.browser.console_support import (
    FIRST_RUN,
    GREETER,
    HELLO,
    ConsoleApp,
    make_console_app,
    menu_action,
    open_console,
    open_worklet,
    sign_in,
    worklet_item,
)
from tests.stack import Stack, code_worklet

pytestmark = pytest.mark.browser

KEY_STORAGE = "worklets.console.key"


@pytest.fixture
def app(web_stack: Stack) -> ConsoleApp:
    return make_console_app(web_stack)


def trace_output(page: Page, block: str) -> Locator:
    return page.locator(f'[data-testid="trace-block"][data-block="{block}"]').get_by_test_id(
        "trace-output"
    )


def graph_node(page: Page, block: str) -> Locator:
    return page.locator(f'[data-testid="graph-node"][data-block="{block}"]')


# ---------------------------------------------------------------- signing in


def test_sign_in_takes_an_admin_key_and_refuses_an_invoke_key(app: ConsoleApp, page: Page) -> None:
    invoke_key = app.new_key("invoke")
    open_console(page, app.stack)
    page.get_by_test_id("signin-key").fill(invoke_key)
    page.get_by_test_id("signin-submit").click()
    error = page.get_by_test_id("signin-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("invoke")
    expect(error).to_contain_text("admin")
    expect(page.get_by_test_id("sidebar")).to_have_count(0)
    assert page.evaluate(f"sessionStorage.getItem('{KEY_STORAGE}')") is None

    page.get_by_test_id("signin-key").fill("wk_not-a-key")
    page.get_by_test_id("signin-submit").click()
    expect(error).to_contain_text("not valid")

    page.get_by_test_id("signin-key").fill(app.key)
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("sidebar")).to_be_visible()
    expect(page.get_by_test_id("app-name")).to_have_text("console")
    # the key lives in sessionStorage only: a reload stays signed in, nothing in localStorage
    assert page.evaluate(f"sessionStorage.getItem('{KEY_STORAGE}')") == app.key
    assert page.evaluate("localStorage.length") == 0
    page.reload()
    expect(page.get_by_test_id("sidebar")).to_be_visible()

    page.get_by_test_id("signout").click()
    expect(page.get_by_test_id("signin")).to_be_visible()
    assert page.evaluate(f"sessionStorage.getItem('{KEY_STORAGE}')") is None


# ---------------------------------------------------------------- create and test


def test_create_a_worklet_and_test_it_block_by_block(app: ConsoleApp, page: Page) -> None:
    sign_in(page, app)
    expect(page.get_by_test_id("no-worklets")).to_be_visible()
    page.get_by_test_id("new-worklet").click()
    page.get_by_test_id("new-worklet-name").fill("greeting")
    page.get_by_test_id("new-worklet-create").click()

    expect(page.get_by_test_id("worklet-title")).to_have_text("greeting")
    expect(worklet_item(page, "greeting")).to_have_class(re.compile(r"\bactive\b"))
    # the template's two blocks, drawn with the arrow between them
    expect(page.get_by_test_id("graph-node")).to_have_count(2)
    expect(graph_node(page, "prepare")).to_be_visible()
    expect(graph_node(page, "respond")).to_be_visible()
    expect(page.locator('.edge-group[data-from="prepare"][data-to="respond"]')).to_have_count(1)
    expect(page.get_by_test_id("definition-editor")).to_have_value(
        re.compile(r'"name": "greeting"')
    )

    page.get_by_test_id("test-input").fill('{"name": "Ada"}')
    page.get_by_test_id("test-run").click()
    expect(page.get_by_test_id("test-status")).to_have_attribute(
        "data-status", "SUCCEEDED", timeout=FIRST_RUN
    )
    expect(page.get_by_test_id("test-output")).to_contain_text('"message": "Hello, Ada!"')
    # each block: its output, its logs, its duration
    expect(page.get_by_test_id("trace-block")).to_have_count(2)
    expect(trace_output(page, "prepare")).to_contain_text('"name": "Ada"')
    expect(trace_output(page, "respond")).to_contain_text('"message": "Hello, Ada!"')
    prepare = page.locator('[data-testid="trace-block"][data-block="prepare"]')
    expect(prepare.get_by_test_id("trace-logs")).to_contain_text("preparing a greeting for Ada")
    expect(prepare.get_by_test_id("trace-duration")).to_have_text(re.compile(r"\d.* m?s"))
    expect(graph_node(page, "respond")).to_have_class(re.compile(r"\bnode-ran\b"))

    # the run history lists the run (a record, written when it ended), with its detail
    row = page.get_by_test_id("run-row").first
    expect(row).to_have_attribute("data-status", "SUCCEEDED", timeout=FIRST_RUN)
    expect(row.get_by_test_id("run-trigger")).to_have_text("API")
    row.click()
    detail = page.get_by_test_id("run-detail")
    expect(detail).to_be_visible()
    expect(detail.get_by_test_id("run-detail-input")).to_contain_text('"name": "Ada"')
    expect(detail.get_by_test_id("run-detail-output")).to_contain_text("Hello, Ada!")
    expect(detail.get_by_test_id("trace-block")).to_have_count(2)
    detail.get_by_test_id("dialog-close").click()
    expect(detail).to_have_count(0)

    worklets = app.get("/worklets").json()["items"]
    assert [w["name"] for w in worklets] == ["greeting"]


# ---------------------------------------------------------------- Settings: schedules


def test_schedule_from_the_settings_dialog_shows_a_clock_icon(app: ConsoleApp, page: Page) -> None:
    worklet = app.deploy(
        code_worklet("nightly", "def main(block_input):\n    return block_input\n")
    )
    sign_in(page, app)
    item = worklet_item(page, "nightly")
    expect(item).to_be_visible()
    expect(item.get_by_test_id("clock-icon")).to_have_count(0)

    menu_action(page, "nightly", "settings")
    dialog = page.get_by_test_id("settings-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("schedule-enabled")).not_to_be_checked()
    expect(dialog.get_by_test_id("schedule-fields")).to_be_hidden()
    dialog.get_by_test_id("schedule-enabled").check()
    dialog.get_by_test_id("schedule-frequency").select_option("daily")
    dialog.get_by_test_id("schedule-time").fill("09:30")
    dialog.get_by_test_id("schedule-timezone").fill("Europe/Paris")
    dialog.get_by_test_id("schedule-input").fill('{"name": "team"}')
    dialog.get_by_test_id("settings-save").click()
    expect(dialog).to_have_count(0)

    expect(item.get_by_test_id("clock-icon")).to_be_visible()
    expect(item.get_by_test_id("clock-icon")).to_have_attribute(
        "title", re.compile("daily at 09:30 \\(Europe/Paris\\)")
    )
    schedule = app.get(f"/worklets/{worklet['id']}/schedule").json()
    assert schedule["cron"] == "30 9 * * *"
    assert schedule["timezone"] == "Europe/Paris"
    assert schedule["input"] == {"name": "team"}

    # the dialog shows the schedule as it was saved; unticking removes it
    menu_action(page, "nightly", "settings")
    expect(dialog.get_by_test_id("schedule-enabled")).to_be_checked()
    expect(dialog.get_by_test_id("schedule-frequency")).to_have_value("daily")
    expect(dialog.get_by_test_id("schedule-time")).to_have_value("09:30")
    expect(dialog.get_by_test_id("schedule-next")).to_be_visible()
    dialog.get_by_test_id("schedule-enabled").uncheck()
    dialog.get_by_test_id("settings-save").click()
    expect(dialog).to_have_count(0)
    expect(item.get_by_test_id("clock-icon")).to_have_count(0)
    assert app.get(f"/worklets/{worklet['id']}/schedule").status_code == 404


def test_a_bad_cron_is_shown_next_to_the_cron_field(app: ConsoleApp, page: Page) -> None:
    worklet = app.deploy(code_worklet("reports", "def main(block_input):\n    return 1\n"))
    sign_in(page, app)
    menu_action(page, "reports", "settings")
    dialog = page.get_by_test_id("settings-dialog")
    dialog.get_by_test_id("schedule-enabled").check()
    dialog.get_by_test_id("schedule-frequency").select_option("cron")
    dialog.get_by_test_id("schedule-cron").fill("61 * * * *")
    dialog.get_by_test_id("settings-save").click()

    error = dialog.get_by_test_id("error-schedule-cron")
    expect(error).to_be_visible()
    expect(error).to_contain_text(re.compile(r"\S"))
    expect(dialog.locator('[data-field="schedule-cron"]')).to_have_class(re.compile("has-error"))
    expect(dialog.get_by_test_id("error-schedule-timezone")).to_be_hidden()
    expect(dialog).to_be_visible()  # nothing saved: the dialog stays open
    assert app.get(f"/worklets/{worklet['id']}/schedule").status_code == 404

    # an unknown time zone is shown next to the time zone field
    dialog.get_by_test_id("schedule-cron").fill("*/5 * * * *")
    dialog.get_by_test_id("schedule-timezone").fill("Mars/Olympus_Mons")
    dialog.get_by_test_id("settings-save").click()
    expect(dialog.get_by_test_id("error-schedule-timezone")).to_contain_text("Mars/Olympus_Mons")
    expect(error).to_be_hidden()

    dialog.get_by_test_id("schedule-timezone").fill("UTC")
    dialog.get_by_test_id("settings-save").click()
    expect(dialog).to_have_count(0)
    expect(worklet_item(page, "reports").get_by_test_id("clock-icon")).to_be_visible()
    assert app.get(f"/worklets/{worklet['id']}/schedule").json()["cron"] == "*/5 * * * *"


# ---------------------------------------------------------------- the "..." menu


def test_rename_and_delete_through_the_menu(app: ConsoleApp, page: Page) -> None:
    worklet = app.deploy(code_worklet("draft", "def main(block_input):\n    return 1\n"))
    app.deploy(code_worklet("keeper", "def main(block_input):\n    return 2\n"))
    sign_in(page, app)
    open_worklet(page, "draft")

    menu_action(page, "draft", "rename")
    rename = page.get_by_test_id("rename-dialog")
    expect(rename.get_by_test_id("rename-input")).to_have_value("draft")
    rename.get_by_test_id("rename-input").fill("keeper")  # taken: the API's 409, shown
    rename.get_by_test_id("rename-save").click()
    expect(rename.get_by_test_id("error-rename-input")).to_contain_text("already exists")
    rename.get_by_test_id("rename-input").fill("final")
    rename.get_by_test_id("rename-save").click()
    expect(rename).to_have_count(0)
    expect(worklet_item(page, "final")).to_be_visible()
    expect(worklet_item(page, "draft")).to_have_count(0)
    expect(page.get_by_test_id("worklet-title")).to_have_text("final")  # the open page follows
    renamed = app.get(f"/worklets/{worklet['id']}").json()
    assert (renamed["name"], renamed["version"]) == ("final", 2)

    # Delete asks first; Cancel keeps the worklet
    menu_action(page, "final", "delete")
    confirm = page.get_by_test_id("confirm-dialog")
    expect(confirm).to_contain_text("final")
    confirm.get_by_test_id("confirm-cancel").click()
    expect(confirm).to_have_count(0)
    expect(worklet_item(page, "final")).to_be_visible()

    menu_action(page, "final", "delete")
    page.get_by_test_id("confirm-dialog").get_by_test_id("confirm-ok").click()
    expect(worklet_item(page, "final")).to_have_count(0)
    expect(worklet_item(page, "keeper")).to_be_visible()
    expect(page.get_by_test_id("overview")).to_be_visible()  # its page was open: back home
    assert app.get(f"/worklets/{worklet['id']}").status_code == 404


# ---------------------------------------------------------------- errors where they are


def test_a_definition_error_is_shown_at_its_block(app: ConsoleApp, page: Page) -> None:
    app.deploy(GREETER)
    app.deploy(HELLO)
    sign_in(page, app)
    open_worklet(page, "hello")
    expect(page.get_by_test_id("graph-node")).to_have_count(5)
    expect(graph_node(page, "greet")).to_contain_text("calls greeter")
    expect(page.locator('[data-testid="graph-edge-label"][data-from="route"]').first).to_have_text(
        'input.name == ""'
    )

    broken = json.loads(json.dumps(HELLO))
    broken["blocks"][4]["source"] = "def main(block_input:\n    return 1\n"
    editor = page.get_by_test_id("definition-editor")
    editor.fill(json.dumps(broken, indent=2))
    expect(page.get_by_test_id("definition-status")).to_have_text("unsaved changes")
    page.get_by_test_id("definition-save").click()

    error = page.get_by_test_id("definition-error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("data-block", "sign")
    expect(error).to_contain_text("sign")
    expect(graph_node(page, "sign")).to_have_attribute("data-error", "true")
    expect(graph_node(page, "sign")).to_have_class(re.compile(r"\bnode-error\b"))
    expect(graph_node(page, "normalise")).to_have_attribute("data-error", "false")
    # the block's text is highlighted in the editor, and its lines in the gutter
    highlight = page.get_by_test_id("editor-highlight")
    expect(highlight).to_contain_text('"id": "sign"')
    expect(highlight).not_to_contain_text('"id": "greet"')
    expect(page.locator(".gutter-line.marked").first).to_be_visible()
    assert app.get("/worklets/hello").json()["version"] == 1  # nothing stored

    # a JSON syntax error is shown at its line, before anything is sent
    editor.fill('{\n  "name": "hello",\n  "blocks": [,]\n}\n')
    page.get_by_test_id("definition-save").click()
    expect(error).to_contain_text("line 3")
    expect(page.get_by_test_id("editor-highlight")).to_contain_text('"blocks": [,]')

    page.get_by_test_id("definition-revert").click()
    expect(error).to_be_hidden()
    expect(page.get_by_test_id("definition-status")).to_have_text("version 1 · saved")


# ---------------------------------------------------------------- background runs


def test_a_background_run_shows_its_status_until_it_ends(app: ConsoleApp, page: Page) -> None:
    source = (
        "import time\n\n"
        "def main(block_input):\n"
        "    time.sleep(2)\n"
        '    return {"slept": 2, "for": block_input["who"]}\n'
    )
    worklet = app.deploy(code_worklet("slow", source))
    sign_in(page, app)
    open_worklet(page, "slow")

    # "Run worklet as background task", from the Settings dialog
    page.get_by_test_id("open-settings").click()
    dialog = page.get_by_test_id("settings-dialog")
    dialog.get_by_test_id("setting-background").check()
    dialog.get_by_test_id("setting-timeout").fill("30")
    dialog.get_by_test_id("settings-save").click()
    expect(dialog).to_have_count(0)
    expect(page.get_by_test_id("worklet-background-badge")).to_be_visible()
    settings = app.get(f"/worklets/{worklet['id']}").json()["settings"]
    assert settings == {"background": True, "timeout": 30}

    page.get_by_test_id("test-input").fill('{"who": "Grace"}')
    page.get_by_test_id("test-run").click()
    status = page.get_by_test_id("test-status")
    expect(status).to_have_attribute("data-status", re.compile("QUEUED|RUNNING"))
    history = page.get_by_test_id("test-status-history")
    expect(history.locator('li[data-status="RUNNING"]')).to_have_count(1, timeout=FIRST_RUN)
    expect(status).to_have_attribute("data-status", "SUCCEEDED", timeout=FIRST_RUN)
    expect(history.locator(".history-status")).to_have_text(["QUEUED", "RUNNING", "SUCCEEDED"])
    expect(page.get_by_test_id("test-output")).to_contain_text('"for": "Grace"')
    expect(trace_output(page, "main")).to_contain_text('"slept": 2', timeout=FIRST_RUN)

    row = page.locator('[data-testid="run-row"][data-status="SUCCEEDED"]')
    expect(row).to_have_count(1, timeout=FIRST_RUN)
    expect(row.get_by_test_id("run-trigger")).to_have_text("API (background)")


# ---------------------------------------------------------------- views


def test_views_edit_preview_save_and_delete(app: ConsoleApp, page: Page) -> None:
    app.deploy(GREETER)
    sign_in(page, app)
    page.get_by_test_id("new-view").click()
    editor = page.get_by_test_id("view-editor")
    expect(editor).to_have_value(re.compile('"worklet": "greeter"'))
    preview = page.frame_locator('[data-testid="view-preview-frame"]')
    expect(preview.locator('[data-component="name"]')).to_be_visible()

    definition = {
        "name": "hello-page",
        "title": "Say hello",
        "components": [
            {"id": "who", "type": "text_input", "label": "Name", "value": "Ada"},
            {
                "id": "go",
                "type": "button",
                "label": "Greet",
                "on": {
                    "click": {
                        "worklet": "greeter",
                        "input": {"name": "{{who.value}}"},
                        "assign": {"answer": "message"},
                    }
                },
            },
            {"id": "answer", "type": "text", "label": "Answer"},
        ],
    }
    editor.fill(json.dumps(definition, indent=2))
    expect(preview.locator('[data-component="who"]')).to_be_visible()
    preview.locator('[data-component="go"] button').click()
    expect(preview.locator('[data-component="answer"]')).to_contain_text(
        "Hello, Ada!", timeout=FIRST_RUN
    )

    page.get_by_test_id("view-save").click()
    item = page.locator('[data-testid="view-item"][data-name="hello-page"]')
    expect(item).to_be_visible()
    view_id = item.get_attribute("data-id")
    link = page.get_by_test_id("view-link")
    expect(link).to_have_attribute("href", f"{app.stack.gateway_url}/views/{app.app_id}/{view_id}")
    expect(page.get_by_test_id("view-status")).to_have_text("saved")
    expect(page.get_by_test_id("view-title")).to_have_text("Say hello")

    # a refusal names its component, highlighted in the editor
    broken = json.loads(json.dumps(definition))
    broken["components"][1]["on"]["click"]["worklet"] = "nobody"
    editor.fill(json.dumps(broken, indent=2))
    page.get_by_test_id("view-save").click()
    expect(page.get_by_test_id("view-error")).to_contain_text("nobody")
    expect(page.get_by_test_id("editor-highlight")).to_contain_text('"id": "go"')

    page.get_by_test_id("view-delete").click()
    page.get_by_test_id("confirm-dialog").get_by_test_id("confirm-ok").click()
    expect(item).to_have_count(0)
    assert app.get(f"/views/{view_id}").status_code == 404


def test_a_saved_views_preview_invokes_as_the_view(app: ConsoleApp, page: Page) -> None:
    greeter = app.deploy(GREETER)
    definition = {
        "name": "greet-page",
        "components": [
            {"id": "who", "type": "text_input", "value": "Grace"},
            {
                "id": "go",
                "type": "button",
                "label": "Greet",
                "on": {"click": {"worklet": "greeter", "input": {"name": "{{who.value}}"}}},
            },
        ],
    }
    with app.client() as client:
        r = client.post(f"/v1/applications/{app.app_id}/views", json=definition)
        assert r.status_code == 201, r.text
        view = r.json()
    definition["components"][1]["on"]["click"]["assign"] = {"answer": "message"}
    definition["components"].append({"id": "answer", "type": "text"})
    sign_in(page, app)
    page.locator(f'[data-testid="view-item"][data-id="{view["id"]}"]').get_by_role("link").click()
    editor = page.get_by_test_id("view-editor")
    expect(editor).to_have_value(re.compile('"name": "greet-page"'))
    # an edit shows at once in the preview, which invokes for real, as the view
    editor.fill(json.dumps(definition, indent=2))
    preview = page.frame_locator('[data-testid="view-preview-frame"]')
    expect(preview.locator('[data-component="answer"]')).to_be_visible()
    preview.locator('[data-component="go"] button').click()
    expect(preview.locator('[data-component="answer"]')).to_contain_text(
        "Hello, Grace!", timeout=FIRST_RUN
    )
    # the run is the view's: its trigger is `view` in the worklet's run history
    page.goto(f"{app.stack.registry_url}/console/#/worklets/{greeter['id']}")
    row = page.get_by_test_id("run-row").first
    expect(row).to_have_attribute("data-trigger", "view", timeout=FIRST_RUN)


# ---------------------------------------------------------------- the README's picture


def test_screenshot_of_the_console(app: ConsoleApp, page: Page) -> None:
    app.deploy(GREETER)
    hello = app.deploy(HELLO)
    app.deploy(code_worklet("nightly-report", "def main(block_input):\n    return 1\n"))
    with app.client() as client:
        r = client.put(
            f"/v1/applications/{app.app_id}/worklets/nightly-report/schedule",
            json={"cron": "0 6 * * *", "timezone": "Europe/Paris"},
        )
        assert r.status_code == 201, r.text
        view = {
            "name": "greetings",
            "title": "Greetings",
            "components": [{"id": "who", "type": "text_input", "label": "Name"}],
        }
        r = client.post(f"/v1/applications/{app.app_id}/views", json=view)
        assert r.status_code == 201, r.text
    sign_in(page, app)
    page.goto(f"{app.stack.registry_url}/console/#/worklets/{hello['id']}")
    expect(page.get_by_test_id("worklet-title")).to_have_text("hello")
    expect(worklet_item(page, "nightly-report").get_by_test_id("clock-icon")).to_be_visible()
    page.get_by_test_id("test-input").fill('{"name": "Ada"}')
    page.get_by_test_id("test-run").click()
    expect(page.get_by_test_id("test-status")).to_have_attribute(
        "data-status", "SUCCEEDED", timeout=FIRST_RUN
    )
    expect(page.get_by_test_id("trace-block")).to_have_count(4)
    expect(page.get_by_test_id("run-row").first).to_have_attribute(
        "data-status", "SUCCEEDED", timeout=FIRST_RUN
    )
    expect(page.get_by_test_id("toast")).to_have_count(0)
    screenshot(page, "console")  # test-artifacts/console.png; docs/images/console.png is a copy
