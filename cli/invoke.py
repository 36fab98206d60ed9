"""``worklets invoke``: run a worklet through the gateway, as an API client would."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from typing import Any, TextIO

from cli.client import Gateway, Json
from cli.config import Config
from cli.output import dump, error_line
from shared.schemas import TERMINAL, Status
from shared.settings import CommonSettings

# the platform's default synchronous timeout, when a worklet sets none
DEFAULT_TIMEOUT: float = CommonSettings.model_fields["default_timeout"].default
WAIT_MARGIN = 30.0  # seconds the client waits past the run's timeout for the gateway's answer
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class InputError(ValueError):
    pass


def parse_input(text: str) -> Any:
    """JSON given inline, ``@path`` for a file, or ``-`` for standard input."""
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        try:
            with open(text[1:]) as f:
                text = f.read()
        except OSError as err:
            raise InputError(f"--input {text}: {err.strerror or err}") from None
    try:
        return json.loads(text)
    except ValueError as err:
        raise InputError(
            f'--input is not JSON ({err}); quote it: --input \'{{"name": "Ada"}}\''
        ) from None


class Progress:
    """What a background run is doing, on stderr: a spinner on a terminal, else one line per
    status change."""

    def __init__(self, stream: TextIO, run_id: str) -> None:
        self.stream = stream
        self.run_id = run_id
        self.tty = stream.isatty()
        self.frames = itertools.cycle(SPINNER)
        self.started = time.monotonic()
        self.last: str | None = None

    def update(self, status: str) -> None:
        elapsed = time.monotonic() - self.started
        if self.tty:
            frame = next(self.frames)
            self.stream.write(f"\r{frame} run {self.run_id} {status} {elapsed:5.1f}s ")
            self.stream.flush()
        elif status != self.last:
            self.stream.write(f"run {self.run_id} {status} ({elapsed:.1f}s)\n")
            self.stream.flush()
        self.last = status

    def done(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


def wait_for_run(gateway: Gateway, app: str, worklet_id: str, run_id: str) -> Json:
    """Poll until the run is terminal, showing progress on stderr."""
    progress = Progress(sys.stderr, run_id)
    delay = 0.1
    try:
        while True:
            answer = gateway.poll(app, worklet_id, run_id)
            status = str(answer.get("status"))
            progress.update(status)
            if status in TERMINAL:
                return answer
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
    finally:
        progress.done()


def _print_trace(trace: list[Json], out: TextIO) -> None:
    for step in trace:
        error = step.get("error")
        after = f"error {error.get('type')}: {error.get('message')}" if error else ""
        if not after and step.get("next"):
            after = f"-> {step['next']}"
        duration = float(step.get("duration_ms") or 0)
        out.write(f"  {step.get('block', '?'):<20} {step.get('type', ''):<9} {duration:8.1f} ms  ")
        out.write(f"{after}\n")
        for line in step.get("logs") or []:
            out.write(f"    | {line}\n")


def _run_error(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    where = f" in block `{error['block']}`" if error.get("block") else ""
    kind = error.get("type") or error.get("code") or "error"
    return f"{kind}{where}: {error.get('message', '')}"


def command(args: argparse.Namespace, config: Config) -> int:
    app = args.app or config.require_app()
    gateway_key = config.require_api_key()
    worklet_input = parse_input(args.input)
    with config.registry() as registry:
        entry = registry.resolve_worklet(app, args.worklet)
    worklet_id = entry["id"]
    settings = entry.get("settings") or {}
    timeout = float(settings.get("timeout") or DEFAULT_TIMEOUT) + WAIT_MARGIN
    with Gateway(config.gateway_url, gateway_key, timeout=timeout) as gateway:
        answer = gateway.invoke(
            app, worklet_id, worklet_input, background=args.background, trace=args.trace
        )
        run_id = answer.get("scheduled_worklet_run_id")
        if run_id is None:
            return _show_finished(answer, args)
        if not args.wait:
            if args.json:
                dump(answer)
            else:
                print(run_id)
                sys.stderr.write(f"{answer.get('message', 'queued')} (use --wait to follow it)\n")
            return 0
        final = wait_for_run(gateway, app, worklet_id, run_id)
    succeeded = final.get("status") == Status.SUCCEEDED
    if args.json:
        dump(final)
    elif succeeded:
        dump(final.get("worklet_output"))
    if not succeeded:
        error_line(f"run {run_id} {final.get('status')}: {_run_error(final.get('error'))}")
    return 0 if succeeded else 1


def _show_finished(answer: Json, args: argparse.Namespace) -> int:
    """A synchronous answer: the output, or the user code's error."""
    succeeded = answer.get("success") is True
    if args.json:
        dump(answer)
    else:
        if args.trace and answer.get("trace"):
            print(f"run {answer.get('run_id')} ({answer.get('latency_ms')} ms):")
            _print_trace(answer["trace"], sys.stdout)
        if succeeded:
            dump(answer.get("worklet_output"))
    if not succeeded:
        error_line(f"run {answer.get('run_id')} failed: {_run_error(answer.get('error'))}")
    return 0 if succeeded else 1
