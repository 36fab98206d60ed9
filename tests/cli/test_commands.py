"""``worklets deploy``, ``invoke``, ``runs`` and ``events`` against a stack of the four services."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from services.common.ids import new_id
from tests.cli.conftest import Cli, cli_process
from tests.stack import Stack

pytestmark = pytest.mark.integration

GREET = """\
def main(block_input):
    return {"message": "Hello, " + block_input["name"] + "!"}
"""
DIVIDE = """\
def main(block_input):
    return block_input["a"] / block_input["b"]
"""

SLOW = """\
import time


def main():
    time.sleep(30)
"""


@pytest.fixture(scope="module")
def app(stack: Stack) -> Iterator[tuple[str, str]]:
    yield stack.create_app("cli")


@pytest.fixture(scope="module")
def worklets(stack: Stack, app: tuple[str, str]) -> dict[str, str]:
    """Worklets deployed straight through the registry: name -> id."""
    app_id, _ = app
    definitions = [
        {"name": "greet", "blocks": [{"id": "greet", "type": "code", "source": GREET}]},
        {"name": "divide", "blocks": [{"id": "divide", "type": "code", "source": DIVIDE}]},
        {
            "name": "slow",
            "settings": {"timeout": 0.5},
            "blocks": [{"id": "nap", "type": "code", "source": SLOW}],
        },
        {
            "name": "later",
            "settings": {"background": True},
            "blocks": [{"id": "greet", "type": "code", "source": GREET}],
        },
        {
            "name": "pipeline",
            "blocks": [
                {"id": "first", "type": "code", "source": GREET, "next": "check"},
                {
                    "id": "check",
                    "type": "decision",
                    "conditions": [{"when": 'input.message == ""', "next": "empty"}],
                },
                {"id": "empty", "type": "code", "source": "def main():\n    return None\n"},
            ],
        },
    ]
    return {d["name"]: stack.deploy(app_id, d)["id"] for d in definitions}


@pytest.fixture
def settings(
    stack: Stack, app: tuple[str, str], clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The CLI's settings in the environment: this stack, this application, its admin key."""
    app_id, key = app
    values = {
        "WORKLETS_GATEWAY_URL": stack.gateway_url,
        "WORKLETS_REGISTRY_URL": stack.registry_url,
        "WORKLETS_NATS_URL": stack.servers.nats_url,
        "WORKLETS_PREFIX": stack.prefix,
        "WORKLETS_APP_ID": app_id,
        "WORKLETS_API_KEY": key,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def write_worklet(folder: Path, name: str, source: str, block: str = "main") -> Path:
    """``NAME.yaml`` whose one code block reads its source from ``NAME.py``."""
    (folder / f"{name}.py").write_text(source)
    definition = {
        "name": name,
        "description": "written by the CLI tests",
        "blocks": [{"id": block, "type": "code", "source_file": f"{name}.py"}],
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(definition))
    return path


# ------------------------------------------------------------------------ deploy


def test_deploy_creates_then_updates_only_when_the_definition_changed(
    cli: Cli, settings: dict[str, str], tmp_path: Path
) -> None:
    name = "double-" + new_id(6)
    path = write_worklet(tmp_path, name, "def main(block_input):\n    return block_input * 2\n")

    created = cli("deploy", str(path))
    assert created.code == 0, created.err
    assert f"{name}: id " in created.out and "version 1 (created)" in created.out

    again = cli("deploy", str(path), "--json")
    assert again.code == 0, again.err
    first = json.loads(again.out)
    assert first["action"] == "unchanged" and first["version"] == 1

    (tmp_path / f"{name}.py").write_text("def main(block_input):\n    return block_input * 3\n")
    changed = cli("deploy", str(path), "--json")
    assert changed.code == 0, changed.err
    assert json.loads(changed.out) == {**first, "version": 2, "action": "updated"}

    ran = cli("invoke", name, "--input", "5")
    assert ran.code == 0, ran.err
    assert json.loads(ran.out) == 15


def test_deploy_reads_json_definitions(cli: Cli, settings: dict[str, str], tmp_path: Path) -> None:
    name = "json-" + new_id(6)
    path = tmp_path / "worklet.json"
    source = "def main():\n    return 'from json'\n"
    path.write_text(
        json.dumps({"name": name, "blocks": [{"id": "a", "type": "code", "source": source}]})
    )
    result = cli("deploy", str(path))
    assert result.code == 0, result.err
    assert json.loads(cli("invoke", name).out) == "from json"


def test_deploy_shows_which_block_the_registry_refused(
    cli: Cli, settings: dict[str, str], tmp_path: Path
) -> None:
    path = write_worklet(tmp_path, "broken-" + new_id(6), "def main(:\n    pass\n", block="shaky")
    result = cli("deploy", str(path))
    assert result.code == 1
    assert "invalid_definition" in result.err
    assert "`shaky`" in result.err


def test_deploy_names_a_missing_source_file(
    cli: Cli, settings: dict[str, str], tmp_path: Path
) -> None:
    path = write_worklet(tmp_path, "lost", "def main():\n    return 1\n")
    (tmp_path / "lost.py").unlink()
    result = cli("deploy", str(path))
    assert result.code == 2
    assert "lost.py" in result.err and "`main`" in result.err


# ------------------------------------------------------------------------ invoke


def test_invoke_by_name_or_id_prints_the_output(
    cli: Cli, settings: dict[str, str], worklets: dict[str, str]
) -> None:
    for worklet in ("greet", worklets["greet"]):
        result = cli("invoke", worklet, "--input", '{"name": "Ada"}')
        assert result.code == 0, result.err
        assert json.loads(result.out) == {"message": "Hello, Ada!"}


def test_invoke_json_and_trace(
    cli: Cli, settings: dict[str, str], worklets: dict[str, str]
) -> None:
    answer = cli("invoke", "pipeline", "--input", '{"name": "Ada"}', "--trace", "--json")
    assert answer.code == 0, answer.err
    body = json.loads(answer.out)
    assert body["success"] is True and body["worklet_output"] == {"message": "Hello, Ada!"}
    assert [step["block"] for step in body["trace"]] == ["first", "check"]

    human = cli("invoke", "pipeline", "--input", '{"name": "Ada"}', "--trace")
    assert human.code == 0, human.err
    lines = human.out.splitlines()
    assert any(line.split()[:2] == ["first", "code"] for line in lines), human.out
    assert any(line.split()[:2] == ["check", "decision"] for line in lines), human.out


def test_invoke_exits_non_zero_when_user_code_raises(
    cli: Cli, settings: dict[str, str], worklets: dict[str, str]
) -> None:
    result = cli("invoke", "divide", "--input", '{"a": 1, "b": 0}')
    assert result.code == 1
    assert "ZeroDivisionError" in result.err and "`divide`" in result.err


def test_invoke_async_prints_the_run_id_and_wait_follows_it(
    cli: Cli, settings: dict[str, str], worklets: dict[str, str]
) -> None:
    queued = cli("invoke", "greet", "--input", '{"name": "Bo"}', "--async")
    assert queued.code == 0, queued.err
    run_id = queued.out.strip()
    assert len(run_id) == 26, queued.out

    waited = cli("invoke", "greet", "--input", '{"name": "Bo"}', "--async", "--wait")
    assert waited.code == 0, waited.err
    assert json.loads(waited.out) == {"message": "Hello, Bo!"}
    assert "SUCCEEDED" in waited.err  # progress on stderr

    as_json = cli("invoke", "greet", "--input", '{"name": "Bo"}', "--async", "--wait", "--json")
    body = json.loads(as_json.out)
    assert body["status"] == "SUCCEEDED" and body["worklet_output"] == {"message": "Hello, Bo!"}


def test_invoke_async_wait_exits_non_zero_when_the_run_fails(
    cli: Cli, settings: dict[str, str], worklets: dict[str, str]
) -> None:
    result = cli("invoke", "divide", "--input", '{"a": 1, "b": 0}', "--async", "--wait")
    assert result.code == 1
    assert "FAILED" in result.err and "ZeroDivisionError" in result.err


def test_invoke_reports_a_timed_out_run_with_its_id(
    cli: Cli, settings: dict[str, str], worklets: dict[str, str]
) -> None:
    result = cli("invoke", "slow")
    assert result.code == 1
    assert "timeout" in result.err.lower()
    assert re.search(r"run [0-9a-z]{26}", result.err), result.err


def test_invoke_of_a_background_worklet_hands_back_a_run_id(
    cli: Cli, settings: dict[str, str], worklets: dict[str, str]
) -> None:
    queued = cli("invoke", "later", "--input", '{"name": "Ed"}')
    assert queued.code == 0, queued.err
    assert len(queued.out.strip()) == 26

    waited = cli("invoke", "later", "--input", '{"name": "Ed"}', "--wait")
    assert waited.code == 0, waited.err
    assert json.loads(waited.out) == {"message": "Hello, Ed!"}


def test_invoke_explains_what_is_missing(
    cli: Cli, settings: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    unknown = cli("invoke", "no-such-worklet")
    assert unknown.code == 1 and "no-such-worklet" in unknown.err

    not_json = cli("invoke", "greet", "--input", "{name: Ada}")
    assert not_json.code == 2 and "not JSON" in not_json.err

    monkeypatch.delenv("WORKLETS_API_KEY")
    no_key = cli("invoke", "greet")
    assert no_key.code == 2 and "WORKLETS_API_KEY" in no_key.err


# ------------------------------------------------------------------------ runs


def run_ids(cli: Cli, *argv: str) -> list[str]:
    result = cli("runs", "--json", *argv)
    assert result.code == 0, result.err
    return [run["run_id"] for run in json.loads(result.out)]


def test_runs_lists_recorded_runs(
    cli: Cli, settings: dict[str, str], worklets: dict[str, str]
) -> None:
    ok = json.loads(cli("invoke", "greet", "--input", '{"name": "Cy"}', "--json").out)["run_id"]
    failed = json.loads(cli("invoke", "divide", "--input", '{"a": 1, "b": 0}', "--json").out)
    deadline = time.monotonic() + 30  # the registry records runs from the event stream
    while not {ok, failed["run_id"]} <= set(run_ids(cli, "--limit", "100")):
        assert time.monotonic() < deadline, "runs were not recorded"
        time.sleep(0.1)

    assert failed["run_id"] in run_ids(cli, "--status", "failed", "--limit", "100")
    assert ok not in run_ids(cli, "--status", "FAILED", "--limit", "100")
    assert run_ids(cli, "--worklet", "greet", "--limit", "100")[0] == ok  # newest first

    table = cli("runs", "--worklet", "divide", "--limit", "5")
    assert table.code == 0, table.err
    header, *rows = table.out.splitlines()
    assert header.split()[:5] == ["RUN", "WORKLET", "VERSION", "TRIGGER", "STATUS"]
    row = next(r for r in rows if r.startswith(failed["run_id"]))
    assert row.split()[1:5] == ["divide", "1", "api", "FAILED"]


def test_runs_rejects_an_unknown_status(cli: Cli, settings: dict[str, str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli("runs", "--status", "NOPE")
    assert exit_.value.code == 2


# ------------------------------------------------------------------------ events


def _reader(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def next_line(lines: queue.Queue[str], deadline: float, proc: subprocess.Popen[str]) -> str:
    try:
        return lines.get(timeout=max(0.0, deadline - time.monotonic()))
    except queue.Empty:
        raise AssertionError(f"no line in time; exit status {proc.poll()}") from None


def test_events_prints_one_json_line_per_event_until_ctrl_c(
    settings: dict[str, str], worklets: dict[str, str], clean_env: Path, stack: Stack
) -> None:
    proc = cli_process(
        ["events"], settings, clean_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    threads = [
        threading.Thread(target=_reader, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_reader, args=(proc.stderr, err), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 30
        assert "following" in next_line(err, deadline, proc)  # subscribed

        app_id, key = settings["WORKLETS_APP_ID"], settings["WORKLETS_API_KEY"]
        answer = httpx.post(
            f"{stack.gateway_url}/applications/{app_id}/worklets/{worklets['greet']}/invoke",
            headers={"Authorization": f"Api-Key {key}"},
            json={"worklet_input": {"name": "Di"}},
            timeout=30,
        ).json()
        run_id = answer["run_id"]

        kinds = []
        while "succeeded" not in kinds:
            event = json.loads(next_line(out, deadline, proc))
            if event["run_id"] == run_id:
                assert event["app_id"] == app_id and event["worklet_id"] == worklets["greet"]
                kinds.append(event["kind"])
        assert kinds[0] == "queued" and "started" in kinds

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for thread in threads:
            thread.join(timeout=5)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
