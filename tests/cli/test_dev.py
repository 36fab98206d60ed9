"""``worklets dev`` end to end: a fresh folder and free ports, the demo worklet answering over
HTTP, a clean stop, and a second start that finds its data again."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.config import read_env_file
from cli.devstack import DevError, DevStack
from cli.servers import free_port
from tests.cli.conftest import cli_process

pytestmark = pytest.mark.integration

PORT_VARIABLES = (
    "WORKLETS_GATEWAY_PORT",
    "WORKLETS_REGISTRY_PORT",
    "WORKLETS_NATS_PORT",
    "WORKLETS_MONGO_PORT",
)
CLIENT_VARIABLES = {
    "WORKLETS_GATEWAY_URL",
    "WORKLETS_REGISTRY_URL",
    "WORKLETS_CONSOLE_URL",
    "WORKLETS_NATS_URL",
    "WORKLETS_ADMIN_TOKEN",
    "WORKLETS_APP_ID",
    "WORKLETS_API_KEY",
    "WORKLETS_WORKLET_ID",
}
READY_WITHIN = 120.0  # seconds: two servers, four services, the demo seeded
STOP_WITHIN = 90.0


def processes() -> dict[int, tuple[str, int, int]]:
    """pid -> (state, parent pid, session id) of every process on the machine."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid, _pgrp, session = stat.rsplit(")", 1)[1].split()[:4]
        found[int(entry.name)] = (state, int(ppid), int(session))
    return found


def children(parent: int) -> set[int]:
    """Each child of `worklets dev` leads a session of its own, with its own children."""
    return {pid for pid, (_, ppid, _) in processes().items() if ppid == parent}


def living_in(sessions: set[int]) -> list[int]:
    return [pid for pid, (state, _, sid) in processes().items() if sid in sessions and state != "Z"]


class Dev:
    """``worklets dev`` run as a user would, in ``folder`` (its data in ``folder/.worklets``)."""

    def __init__(self, folder: Path, ports: dict[str, str], name: str) -> None:
        self.env_file = folder / ".worklets" / "dev.env"
        self.output = folder / f"{name}.out"
        with open(self.output, "w") as out:
            self.proc = cli_process(["dev"], ports, folder, stdout=out, stderr=subprocess.STDOUT)
        self.sessions: set[int] = set()

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_ready(self, previous_inode: int | None = None) -> dict[str, str]:
        """dev.env once (re)written: ``worklets dev`` writes it when everything is ready."""
        deadline = time.monotonic() + READY_WITHIN
        while True:
            with contextlib.suppress(FileNotFoundError):
                if self.env_file.stat().st_ino != previous_inode:
                    break
            assert self.proc.poll() is None, f"worklets dev exited:\n{self.text()}"
            assert time.monotonic() < deadline, f"not ready in time:\n{self.text()}"
            time.sleep(0.1)
        self.sessions = children(self.proc.pid)
        return read_env_file(self.env_file)

    def child(self, module: str) -> int:
        for pid in self.sessions:
            with contextlib.suppress(OSError):
                if module in Path(f"/proc/{pid}/cmdline").read_text():
                    return pid
        raise AssertionError(f"no child runs {module}")

    def wait_exit(self) -> int:
        try:
            return self.proc.wait(STOP_WITHIN)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worklets dev did not stop:\n{self.text()}") from None

    def cleanup(self) -> None:
        """Whatever a failed test left running."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for sid in self.sessions:
            with contextlib.suppress(OSError):
                os.killpg(sid, signal.SIGKILL)


def invoke(values: dict[str, str], body: dict[str, Any], key: str | None = None) -> httpx.Response:
    app, worklet = values["WORKLETS_APP_ID"], values["WORKLETS_WORKLET_ID"]
    return httpx.post(
        f"{values['WORKLETS_GATEWAY_URL']}/applications/{app}/worklets/{worklet}/invoke",
        headers={"Authorization": f"Api-Key {key or values['WORKLETS_API_KEY']}"},
        json=body,
        timeout=60,
    )


def poll_until_finished(values: dict[str, str], run_id: str) -> dict[str, Any]:
    app, worklet = values["WORKLETS_APP_ID"], values["WORKLETS_WORKLET_ID"]
    url = f"{values['WORKLETS_GATEWAY_URL']}/applications/{app}/worklets/{worklet}/{run_id}"
    headers = {"Authorization": f"Api-Key {values['WORKLETS_API_KEY']}"}
    deadline = time.monotonic() + 30
    while True:
        answer: dict[str, Any] = httpx.post(url, headers=headers, timeout=10).json()
        if answer["status"] not in ("QUEUED", "RUNNING"):
            return answer
        assert time.monotonic() < deadline, answer
        time.sleep(0.1)


def hello_version(values: dict[str, str]) -> int:
    app, worklet = values["WORKLETS_APP_ID"], values["WORKLETS_WORKLET_ID"]
    answer = httpx.get(
        f"{values['WORKLETS_REGISTRY_URL']}/v1/applications/{app}/worklets/{worklet}",
        headers={"Authorization": f"Bearer {values['WORKLETS_ADMIN_TOKEN']}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    version: int = answer.json()["version"]
    return version


def check_console_and_demo_view(values: dict[str, str], ports: dict[str, str], banner: str) -> None:
    """The console's URL is printed and written; the console knows the gateway, which lets
    the console's origin in; the demo view's page is printed."""
    registry, gateway = values["WORKLETS_REGISTRY_URL"], values["WORKLETS_GATEWAY_URL"]
    console = values["WORKLETS_CONSOLE_URL"]
    assert console == f"http://127.0.0.1:{ports['WORKLETS_REGISTRY_PORT']}/console/"
    assert f"console        {console}" in banner
    page = httpx.get(console, timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    config = httpx.get(f"{console}config.json", timeout=10).json()
    assert config == {"gateway_url": gateway}

    for origin in (registry, f"http://localhost:{ports['WORKLETS_REGISTRY_PORT']}"):
        app, worklet = values["WORKLETS_APP_ID"], values["WORKLETS_WORKLET_ID"]
        preflight = httpx.options(
            f"{gateway}/applications/{app}/worklets/{worklet}/invoke",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
            timeout=10,
        )
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == origin

    views = httpx.get(
        f"{registry}/v1/applications/{values['WORKLETS_APP_ID']}/views",
        headers={"Authorization": f"Api-Key {values['WORKLETS_API_KEY']}"},
        timeout=10,
    ).json()["items"]
    [demo] = [v for v in views if v["name"] == "hello-view"]
    assert demo["url"] == f"{gateway}/views/{values['WORKLETS_APP_ID']}/{demo['id']}"
    assert demo["url"] in banner
    page = httpx.get(demo["url"], timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    definition = httpx.get(
        f"{gateway}/applications/{values['WORKLETS_APP_ID']}/views/{demo['id']}",
        headers={"Authorization": f"Api-Key {values['WORKLETS_API_KEY']}"},
        timeout=10,
    )
    assert definition.status_code == 200, definition.text
    assert [c["type"] for c in definition.json()["components"]] == ["text_input", "button", "text"]


@pytest.mark.timeout(600)
def test_dev_serves_the_demo_stops_cleanly_and_restarts_on_the_same_data(tmp_path: Path) -> None:
    ports = {variable: str(free_port()) for variable in PORT_VARIABLES}

    first = Dev(tmp_path, ports, "first")
    try:
        values = first.wait_ready()
        assert set(values) >= CLIENT_VARIABLES
        assert (
            values["WORKLETS_GATEWAY_URL"] == f"http://127.0.0.1:{ports['WORKLETS_GATEWAY_PORT']}"
        )
        assert first.env_file.stat().st_mode & 0o077 == 0  # it holds the admin token
        banner = first.text()
        for shown in ("/docs", values["WORKLETS_ADMIN_TOKEN"], values["WORKLETS_API_KEY"], "curl"):
            assert shown in banner
        check_console_and_demo_view(values, ports, banner)

        answer = invoke(values, {"worklet_input": {"name": "Ada"}})
        assert answer.status_code == 200, answer.text
        assert answer.json()["success"] is True, answer.text
        assert answer.json()["worklet_output"]["message"] == "Hello, Ada!"

        queued = invoke(values, {"worklet_input": {"name": "Ada"}, "async": True})
        assert queued.status_code == 202, queued.text
        final = poll_until_finished(values, queued.json()["scheduled_worklet_run_id"])
        assert final["status"] == "SUCCEEDED", final
        assert final["worklet_output"]["message"] == "Hello, Ada!"

        # the command line finds everything through .worklets/dev.env in this folder
        cli = cli_process(
            ["invoke", "hello", "--input", '{"name": "Ada"}'],
            {},
            tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = cli.communicate(timeout=60)
        assert cli.returncode == 0, err
        assert '"Hello, Ada!"' in out

        assert len(first.sessions) == 6  # nats-server, nx-27017 and the four services
        first.proc.send_signal(signal.SIGTERM)
        assert first.wait_exit() == 0, first.text()
        assert living_in(first.sessions) == []
    finally:
        first.cleanup()

    second = Dev(tmp_path, ports, "second")
    try:
        again = second.wait_ready(previous_inode=first.env_file.stat().st_ino)
        for same in ("WORKLETS_ADMIN_TOKEN", "WORKLETS_APP_ID", "WORKLETS_API_KEY"):
            assert again[same] == values[same], same
        assert again["WORKLETS_WORKLET_ID"] == values["WORKLETS_WORKLET_ID"]
        assert hello_version(again) == 1  # unchanged definitions make no new version
        assert "(unchanged)" in second.text()

        answer = invoke(again, {"worklet_input": {"name": "Ada"}}, key=values["WORKLETS_API_KEY"])
        assert answer.status_code == 200, answer.text
        assert answer.json()["worklet_output"]["message"] == "Hello, Ada!"

        # a child that dies takes the whole stack down, and says why
        os.kill(second.child("services.scheduler"), signal.SIGKILL)
        assert second.wait_exit() == 1
        assert "scheduler exited unexpectedly" in second.text()
        assert living_in(second.sessions) == []
    finally:
        second.cleanup()


def test_sigterm_while_starting_stops_what_was_started(tmp_path: Path) -> None:
    ports = {variable: str(free_port()) for variable in PORT_VARIABLES}
    dev = Dev(tmp_path, ports, "interrupted")
    try:
        deadline = time.monotonic() + READY_WITHIN
        while "starting gateway" not in dev.text():  # nats, mongo and registry are up
            assert dev.proc.poll() is None, dev.text()
            assert time.monotonic() < deadline, dev.text()
            time.sleep(0.05)
        dev.sessions = children(dev.proc.pid)
        assert len(dev.sessions) >= 3
        dev.proc.send_signal(signal.SIGTERM)
        assert dev.wait_exit() == 0, dev.text()
        assert living_in(dev.sessions) == []
        assert not dev.env_file.exists()
    finally:
        dev.cleanup()


def test_dev_refuses_a_port_in_use(tmp_path: Path) -> None:
    ports = {variable: str(free_port()) for variable in PORT_VARIABLES}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ports["WORKLETS_REGISTRY_PORT"] = str(port)
        proc = cli_process(["dev"], ports, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"port {port}" in err and "WORKLETS_REGISTRY_PORT" in err
    assert not (tmp_path / ".worklets" / "dev.env").exists()


def test_the_gateway_lets_the_console_in(tmp_path: Path) -> None:
    """Without starting anything: the services' settings for the console."""
    ports = {variable: str(free_port()) for variable in PORT_VARIABLES}
    stack = DevStack(tmp_path, {**ports, "WORKLETS_CORS_ORIGINS": '["https://app.example"]'})
    registry_port = ports["WORKLETS_REGISTRY_PORT"]
    assert json.loads(stack.service_env("gateway")["WORKLETS_CORS_ORIGINS"]) == [
        "https://app.example",
        f"http://127.0.0.1:{registry_port}",
        f"http://localhost:{registry_port}",
    ]
    registry_env = stack.service_env("registry")
    gateway_url = f"http://127.0.0.1:{ports['WORKLETS_GATEWAY_PORT']}"
    assert registry_env["WORKLETS_GATEWAY_PUBLIC_URL"] == gateway_url
    assert "WORKLETS_CORS_ORIGINS" not in registry_env
    assert stack.console_url == f"http://127.0.0.1:{registry_port}/console/"
    for wrong in ("https://app.example", '{"a": 1}', "[1]"):
        with pytest.raises(DevError, match="WORKLETS_CORS_ORIGINS"):
            DevStack(tmp_path, {**ports, "WORKLETS_CORS_ORIGINS": wrong})
