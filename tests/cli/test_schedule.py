"""``worklets schedule set|show|rm|ls`` against a registry."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client

from services.common.ids import slot_run_id
from shared.schemas import RunCancelled, RunError
from tests.cli.conftest import Cli
from tests.registry.support import eventually, publish
from tests.registry.test_runs import Run
from tests.stack import Servers, Stack

pytestmark = pytest.mark.integration

SOURCE = "def main(block_input):\n    return block_input\n"


@pytest.fixture(scope="module")
def registry(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A registry alone: schedules are stored and shown, nothing fires them."""
    with Stack(servers, tmp_path_factory.mktemp("cli-schedule")) as stack:
        stack.start("registry")
        yield stack


@pytest.fixture(scope="module")
def worklets(registry: Stack) -> tuple[str, dict[str, str]]:
    """An application with three worklets: (app_id, name -> id)."""
    app_id, _ = registry.create_app("cli-schedule")
    names = ("report", "cleanup", "idle")
    ids = {
        name: registry.deploy(
            app_id, {"name": name, "blocks": [{"id": "main", "type": "code", "source": SOURCE}]}
        )["id"]
        for name in names
    }
    return app_id, ids


@pytest.fixture
def settings(
    registry: Stack,
    worklets: tuple[str, dict[str, str]],
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """The CLI's settings in the environment: this registry, with the admin token."""
    values = {
        "WORKLETS_REGISTRY_URL": registry.registry_url,
        "WORKLETS_ADMIN_TOKEN": registry.admin_token,
        "WORKLETS_APP_ID": worklets[0],
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def ok(cli: Cli, *argv: str) -> str:
    result = cli(*argv)
    assert result.code == 0, (argv, result.err)
    return result.out


def as_json(cli: Cli, *argv: str) -> Any:
    return json.loads(ok(cli, *argv, "--json"))


def lines(text: str) -> dict[str, str]:
    """``show``'s ``label  value`` lines (continuation lines are left out)."""
    found = {}
    for line in text.splitlines():
        label, _, value = line.partition("  ")
        if label.strip():
            found[label.strip()] = value.strip()
    return found


def cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_set_show_ls_rm(
    cli: Cli, settings: dict[str, str], worklets: tuple[str, dict[str, str]]
) -> None:
    _, ids = worklets
    assert ok(cli, "schedule", "ls").strip() == "no schedules"

    out = ok(
        cli,
        "schedule",
        "set",
        "report",
        "--cron",
        "0 9 * * 1-5",
        "--timezone",
        "Europe/Paris",
        "--input",
        '{"to": "ops"}',
    )
    shown = lines(out)
    assert shown["worklet"] == f"report ({ids['report']})"
    assert (shown["cron"], shown["timezone"]) == ("0 9 * * 1-5", "Europe/Paris")
    assert json.loads(shown["input"]) == {"to": "ops"}
    assert (shown["enabled"], shown["background"], shown["overlap"]) == ("yes", "yes", "skip")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d 09:00:00\+0[12]:00", shown["next fire"]), out
    assert (shown["last run"], shown["skipped"]) == ("none yet", "0")

    cleanup = as_json(
        cli,
        "schedule",
        "set",
        ids["cleanup"],  # by id
        "--every",
        "15m",
        "--foreground",
        "--disabled",
        "--overlap",
        "allow",
    )
    assert (cleanup["worklet_name"], cleanup["every"], cleanup["input"]) == ("cleanup", "15m", None)
    assert (cleanup["background"], cleanup["enabled"], cleanup["overlap"]) == (
        False,
        False,
        "allow",
    )
    assert cleanup["next_fire_times"] == []

    report = as_json(cli, "schedule", "show", "report")
    assert as_json(cli, "schedule", "show", ids["report"]) == {
        **report,
        "next_fire_times": report["next_fire_times"],
    }
    assert (report["cron"], report["input"]) == ("0 9 * * 1-5", {"to": "ops"})

    header, *rows = ok(cli, "schedule", "ls").splitlines()
    assert cells(header) == ["WORKLET", "SCHEDULE", "NEXT FIRE", "LAST RUN"]
    assert cells(rows[0])[:2] == ["cleanup", "every 15m (disabled)"]
    assert cells(rows[0])[2:] == ["-", "-"]
    assert cells(rows[1])[:2] == ["report", "cron 0 9 * * 1-5 Europe/Paris"]
    assert cells(rows[1])[3] == "-"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d 09:00:00\+0[12]:00", cells(rows[1])[2]), rows[1]
    listed = as_json(cli, "schedule", "ls")
    assert [s["worklet_name"] for s in listed] == ["cleanup", "report"]

    # set replaces the whole schedule and keeps its id
    replaced = as_json(cli, "schedule", "set", "report", "--every", "1h")
    assert replaced["schedule_id"] == report["schedule_id"]
    assert (replaced["every"], replaced["timezone"], replaced["input"]) == ("1h", "UTC", None)
    assert "cron" not in replaced

    assert ok(cli, "schedule", "rm", "cleanup").strip() == "removed the schedule of cleanup"
    gone = cli("schedule", "show", "cleanup")
    assert gone.code == 1 and "not_found" in gone.err and "no schedule" in gone.err
    assert cli("schedule", "rm", "cleanup").code == 1
    assert [s["worklet_name"] for s in as_json(cli, "schedule", "ls")] == ["report"]
    ok(cli, "schedule", "rm", "report")


def test_set_refusals_name_the_field_and_store_nothing(
    cli: Cli, settings: dict[str, str], worklets: tuple[str, dict[str, str]]
) -> None:
    refused = [
        (["--cron", "0 25 * * *"], "cron"),
        (["--cron", "0 9 * * *", "--timezone", "Atlantis/Capital"], "timezone"),
        (["--every", "500ms"], "every"),
        (["--at", "2020-01-01T00:00:00"], "at"),
        (["--every", "1h", "--at", "tomorrow"], None),  # argparse: only one of them
    ]
    for options, field in refused:
        if field is None:
            with pytest.raises(SystemExit) as usage:
                cli("schedule", "set", "idle", *options)
            assert usage.value.code == 2
            continue
        result = cli("schedule", "set", "idle", *options)
        assert result.code == 1, (options, result.err)
        assert "invalid_request" in result.err and f"(field `{field}`)" in result.err, result.err
    for usage_error in (["idle"], ["idle", "--every", "1h", "--overlap", "never"]):
        with pytest.raises(SystemExit) as usage:
            cli("schedule", "set", *usage_error)
        assert usage.value.code == 2

    not_json = cli("schedule", "set", "idle", "--every", "1h", "--input", "{to: ops}")
    assert not_json.code == 2 and "not JSON" in not_json.err
    unknown = cli("schedule", "set", "no-such-worklet", "--every", "1h")
    assert unknown.code == 1 and "no-such-worklet" in unknown.err

    nothing = cli("schedule", "show", "idle")
    assert nothing.code == 1 and "no schedule" in nothing.err


def test_set_at_takes_iso_times_without_seconds(
    cli: Cli, settings: dict[str, str], worklets: tuple[str, dict[str, str]]
) -> None:
    year = datetime.now(UTC).year + 2
    once = as_json(
        cli, "schedule", "set", "idle", "--at", f"{year}-12-24T18:00", "--tz", "Asia/Tokyo"
    )
    assert once["at"] == f"{year}-12-24T18:00:00"
    assert once["next_fire_times"] == [f"{year}-12-24T18:00:00+09:00"]
    shown = lines(ok(cli, "schedule", "show", "idle"))
    assert (shown["at"], shown["next fire"]) == (
        f"{year}-12-24T18:00:00",
        f"{year}-12-24 18:00:00+09:00",
    )
    ok(cli, "schedule", "rm", "idle")


async def test_ls_and_show_give_the_last_run(
    cli: Cli,
    settings: dict[str, str],
    worklets: tuple[str, dict[str, str]],
    registry: Stack,
    nc: Client,
) -> None:
    app_id, ids = worklets
    schedule = as_json(cli, "schedule", "set", "idle", "--cron", "0 0 1 1 *")
    fire = datetime(2026, 1, 1, tzinfo=UTC)
    ran = Run(
        app_id,
        ids["idle"],
        slot_run_id(schedule["schedule_id"], fire),
        trigger="schedule",
        schedule_id=schedule["schedule_id"],
    )
    skipped = Run(
        app_id,
        ids["idle"],
        slot_run_id(schedule["schedule_id"], fire + timedelta(days=365)),
        trigger="schedule",
        schedule_id=schedule["schedule_id"],
    )
    error = RunError(type="OverlapSkipped", message="the previous scheduled run is still running")
    await publish(
        nc,
        registry.prefix,
        *ran.all(),
        RunCancelled(**skipped.ids, at=skipped.at(0), error=error),
    )

    async def recorded() -> dict[str, Any] | None:
        [found] = as_json(cli, "schedule", "ls")
        return found if found["skipped"] == 1 and found["last_run"] else None

    found = await eventually(recorded, "the scheduled runs to be recorded")
    assert found["last_run"]["run_id"] == skipped.run_id

    _, row = ok(cli, "schedule", "ls").splitlines()
    assert cells(row)[0] == "idle" and cells(row)[-1] == "CANCELLED (1 skipped)"
    shown = lines(ok(cli, "schedule", "show", "idle"))
    assert shown["last run"] == f"{skipped.run_id} CANCELLED"
    assert shown["skipped"] == "1"
    ok(cli, "schedule", "rm", "idle")
