"""``worklets runs``: the latest runs of an application, from the registry."""

from __future__ import annotations

import argparse
from datetime import datetime

from cli.client import find_worklet
from cli.config import Config
from cli.output import dump, table
from shared.schemas import Status

HEADERS = ("RUN", "WORKLET", "VERSION", "TRIGGER", "STATUS", "LATENCY", "QUEUED")


def parse_status(text: str) -> str:
    value = text.upper()
    if value not in Status.__members__:
        choices = ", ".join(Status)
        raise argparse.ArgumentTypeError(f"unknown status {text!r} (one of {choices})")
    return value


def _when(value: object) -> str:
    if not isinstance(value, str):
        return ""
    try:
        return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


def command(args: argparse.Namespace, config: Config) -> int:
    app = args.app or config.require_app()
    with config.registry() as registry:
        worklets = registry.list_worklets(app)
        names = {w["id"]: w["name"] for w in worklets}
        worklet_id = None
        if args.worklet:
            worklet_id = find_worklet(worklets, app, args.worklet)["id"]
        runs = registry.list_runs(app, worklet_id=worklet_id, status=args.status, limit=args.limit)
    if args.json:
        dump(runs)
        return 0
    rows = [
        (
            str(run["run_id"]),
            str(names.get(run.get("worklet_id"), run.get("worklet_id", ""))),
            str(run.get("version", "")),
            str(run.get("trigger", "")),
            str(run.get("status", "")),
            f"{run['latency_ms']} ms" if run.get("latency_ms") is not None else "",
            _when(run.get("queued_at")),
        )
        for run in runs
    ]
    if rows:
        table(HEADERS, rows)
    else:
        print("no runs")
    return 0
