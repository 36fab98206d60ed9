"""The ``worklets`` command line.

Defaults come from the environment, then from ``$WORKLETS_HOME/dev.env`` (``.worklets/dev.env``
here), which ``worklets dev`` writes: right after ``make dev`` every command works as is.

    worklets dev                                   the whole platform on this machine
    worklets deploy hello.yaml                     create or update a worklet
    worklets invoke hello --input '{"name": "Ada"}' [--async [--wait]] [--trace]
    worklets runs [--worklet hello] [--status FAILED] [--limit 20]
    worklets schedule set hello --cron '0 9 * * 1-5' [--timezone Europe/Paris] [--input JSON]
    worklets schedule show|rm hello;  worklets schedule ls
    worklets events                                follow run events (Ctrl-C to stop)

Exit status: 0 on success, 1 when a run or a request failed, 2 for a usage or configuration
mistake.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from cli import deploy, devstack, events, invoke, runs, schedule
from cli.client import ApiError
from cli.config import Config, ConfigError, load_config
from cli.output import error_line

Command = Callable[[argparse.Namespace, Config], int]


def _dev(args: argparse.Namespace, config: Config) -> int:
    return devstack.main()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="worklets",
        description="Run, deploy and invoke worklets.",
        epilog="Settings: WORKLETS_GATEWAY_URL, WORKLETS_REGISTRY_URL, WORKLETS_NATS_URL, "
        "WORKLETS_ADMIN_TOKEN, WORKLETS_APP_ID, WORKLETS_API_KEY (environment or "
        "$WORKLETS_HOME/dev.env).",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Command, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(run=run)
        return p

    def app_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--app", help="application id (default: WORKLETS_APP_ID)")

    def json_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print JSON")

    command("dev", _dev, "start the platform and a demo application on this machine")

    p = command(
        "deploy", deploy.command, "create or update a worklet from a YAML or JSON definition"
    )
    p.add_argument("file", metavar="FILE", help="definition file (.yaml, .yml or .json)")
    app_option(p)
    json_option(p)

    p = command("invoke", invoke.command, "invoke a worklet through the gateway")
    p.add_argument("worklet", metavar="WORKLET", help="worklet id or name")
    p.add_argument(
        "--input",
        "-i",
        default="null",
        metavar="JSON",
        help="worklet_input as JSON, @FILE or - for standard input (default: null)",
    )
    p.add_argument("--async", dest="background", action="store_true", help="run in background")
    p.add_argument(
        "--wait",
        action="store_true",
        help="when the run goes to the background: wait for it to end",
    )
    p.add_argument("--trace", action="store_true", help="show what each block did")
    app_option(p)
    json_option(p)

    p = command("runs", runs.command, "list the latest runs")
    p.add_argument("--worklet", "-w", metavar="W", help="worklet id or name")
    p.add_argument("--status", "-s", type=runs.parse_status, metavar="S", help="e.g. FAILED")
    p.add_argument("--limit", "-n", type=int, default=20, metavar="N", help="default 20")
    app_option(p)
    json_option(p)

    schedule.add_parser(sub, app_option, json_option)

    p = command("events", events.command, "follow run events on NATS, one JSON line each")
    p.add_argument("--worklet", "-w", metavar="W", help="only this worklet (id or name)")
    app_option(p)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        run: Command = args.run
        return run(args, load_config())
    except (ConfigError, deploy.DefinitionFileError, invoke.InputError) as err:
        error_line(str(err))
        return 2
    except (ApiError, ConnectionError) as err:
        error_line(str(err))
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
