"""``worklets schedule set|show|rm|ls``: worklet schedules, through the registry.

    worklets schedule set hello --cron '0 9 * * 1-5' --timezone Europe/Paris --input '{"a": 1}'
    worklets schedule set hello --every 15m [--foreground] [--disabled] [--overlap allow]
    worklets schedule set hello --at 2026-12-24T18:00 --timezone Europe/Paris
    worklets schedule show hello
    worklets schedule rm hello
    worklets schedule ls

``set`` replaces the worklet's whole schedule (an option left out takes its default) and keeps
its id. A worklet is named by its id or name, as for ``invoke``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cli.client import Json
from cli.config import Config
from cli.invoke import parse_input
from cli.output import dump, table

Command = Callable[[argparse.Namespace, Config], int]
KINDS = ("cron", "every", "at")
HEADERS = ("WORKLET", "SCHEDULE", "NEXT FIRE", "LAST RUN")


def _moment(value: Any) -> str:
    """An ISO time as ``2026-12-01 09:00:00+01:00``: in the offset the registry gave."""
    if not isinstance(value, str):
        return ""
    try:
        return datetime.fromisoformat(value).replace(microsecond=0).isoformat(sep=" ")
    except ValueError:
        return value


def _at(text: str) -> str:
    """``--at`` as the registry reads it: any ISO 8601 form Python reads (``2026-12-24T18:00``,
    ``2026-12-24``) becomes ``2026-12-24T18:00:00``; anything else is sent as written, for the
    registry to explain."""
    try:
        return datetime.fromisoformat(text).isoformat()
    except ValueError:
        return text


def body(args: argparse.Namespace) -> Json:
    """The PUT body ``set`` sends."""
    sent: Json = {kind: getattr(args, kind) for kind in KINDS if getattr(args, kind) is not None}
    if "at" in sent:
        sent["at"] = _at(sent["at"])
    if args.timezone:
        sent["timezone"] = args.timezone
    if args.input is not None:
        sent["input"] = parse_input(args.input)
    sent["background"] = not args.foreground
    sent["enabled"] = not args.disabled
    sent["overlap"] = args.overlap
    return sent


def summary(schedule: Json) -> str:
    """``cron 0 9 * * 1-5 Europe/Paris``, ``every 15m``, ``at ...``; ``(disabled)`` if so."""
    kind = next((k for k in KINDS if k in schedule), "?")
    text = f"{kind} {schedule.get(kind, '')}"
    timezone = schedule.get("timezone", "UTC")
    if kind != "every" and timezone != "UTC":
        text += f" {timezone}"
    if schedule.get("enabled") is False:
        text += " (disabled)"
    return text


def _last_run(schedule: Json) -> str:
    last = schedule.get("last_run")
    text = str(last.get("status", "")) if isinstance(last, dict) else "-"
    skipped = schedule.get("skipped") or 0
    return f"{text} ({skipped} skipped)" if skipped else text


def _yes_no(value: Any) -> str:
    return {True: "yes", False: "no"}.get(value, "?") if isinstance(value, bool) else "?"


def describe(schedule: Json) -> list[tuple[str, str]]:
    """``show`` and ``set``: one line per property."""
    kind = next((k for k in KINDS if k in schedule), "?")
    fires = [_moment(f) for f in schedule.get("next_fire_times") or []]
    last = schedule.get("last_run")
    if isinstance(last, dict):
        when = _moment(last.get("queued_at"))
        last_text = f"{last.get('run_id')} {last.get('status')}" + (f" ({when})" if when else "")
    else:
        last_text = "none yet"
    rows = [
        ("worklet", f"{schedule.get('worklet_name')} ({schedule.get('worklet_id')})"),
        ("schedule", str(schedule.get("schedule_id"))),
        (kind, str(schedule.get(kind, ""))),
        ("timezone", str(schedule.get("timezone", ""))),
        ("input", json.dumps(schedule.get("input"), ensure_ascii=False)),
        ("enabled", _yes_no(schedule.get("enabled"))),
        ("background", _yes_no(schedule.get("background"))),
        ("overlap", str(schedule.get("overlap", ""))),
        ("next fire", fires[0] if fires else "none"),
        *(("", fire) for fire in fires[1:]),
        ("last run", last_text),
        ("skipped", str(schedule.get("skipped", 0))),
        ("updated", _moment(schedule.get("updated_at"))),
    ]
    return rows


def _print(schedule: Json, as_json: bool) -> None:
    if as_json:
        dump(schedule)
        return
    rows = describe(schedule)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}".rstrip())


# ---------------------------------------------------------------- commands


def set_command(args: argparse.Namespace, config: Config) -> int:
    app = args.app or config.require_app()
    sent = body(args)  # input mistakes before any request
    with config.registry() as registry:
        worklet = registry.resolve_worklet(app, args.worklet)
        schedule = registry.put_schedule(app, worklet["id"], sent)
    _print(schedule, args.json)
    return 0


def show_command(args: argparse.Namespace, config: Config) -> int:
    app = args.app or config.require_app()
    with config.registry() as registry:
        worklet = registry.resolve_worklet(app, args.worklet)
        schedule = registry.get_schedule(app, worklet["id"])
    _print(schedule, args.json)
    return 0


def rm_command(args: argparse.Namespace, config: Config) -> int:
    app = args.app or config.require_app()
    with config.registry() as registry:
        worklet = registry.resolve_worklet(app, args.worklet)
        registry.delete_schedule(app, worklet["id"])
    print(f"removed the schedule of {worklet['name']}")
    return 0


def ls_command(args: argparse.Namespace, config: Config) -> int:
    app = args.app or config.require_app()
    with config.registry() as registry:
        schedules = registry.list_schedules(app)
    if args.json:
        dump(schedules)
        return 0
    rows = [
        (
            str(s.get("worklet_name", "")),
            summary(s),
            _moment((s.get("next_fire_times") or [None])[0]) or "-",
            _last_run(s),
        )
        for s in schedules
    ]
    if rows:
        table(HEADERS, rows)
    else:
        print("no schedules")
    return 0


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    app_option: Callable[[argparse.ArgumentParser], None],
    json_option: Callable[[argparse.ArgumentParser], None],
) -> None:
    """``schedule`` and its four actions, under the top-level ``sub``."""
    description = "set, show, remove or list worklet schedules"
    top = sub.add_parser("schedule", help=description, description=description)
    actions = top.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, run: Command, help: str) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=help, description=help)
        p.set_defaults(run=run)
        app_option(p)
        return p

    p = action(
        "set",
        set_command,
        "create or replace a worklet's schedule (options left out take their defaults)",
    )
    p.add_argument("worklet", metavar="WORKLET", help="worklet id or name")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", metavar="EXPR", help="five fields, e.g. '0 9 * * 1-5'")
    when.add_argument("--every", metavar="DURATION", help="e.g. 30s, 15m, 1h30m (at least 1s)")
    when.add_argument("--at", metavar="ISO", help="once, e.g. 2026-12-24T18:00 (in --timezone)")
    p.add_argument("--timezone", "--tz", metavar="TZ", help="IANA name (default: UTC)")
    p.add_argument(
        "--input",
        "-i",
        metavar="JSON",
        help="worklet_input of every run: JSON, @FILE or - for standard input (default: null)",
    )
    p.add_argument(
        "--foreground",
        action="store_true",
        help="run with the synchronous timeout instead of as background runs",
    )
    p.add_argument("--disabled", action="store_true", help="store it without firing it")
    p.add_argument(
        "--overlap",
        choices=("skip", "allow"),
        default="skip",
        help="when the previous scheduled run is still running: skip the slot (default) "
        "or run anyway",
    )
    json_option(p)

    p = action("show", show_command, "a worklet's schedule, next fire times and last run")
    p.add_argument("worklet", metavar="WORKLET", help="worklet id or name")
    json_option(p)

    p = action("rm", rm_command, "remove a worklet's schedule")
    p.add_argument("worklet", metavar="WORKLET", help="worklet id or name")

    p = action("ls", ls_command, "every scheduled worklet: next fire and last run")
    json_option(p)
