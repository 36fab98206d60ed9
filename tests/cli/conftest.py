"""Running the ``worklets`` command line in the tests, isolated from the machine's settings."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cli.main import main

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


Cli = Callable[..., Result]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No WORKLETS_* from the machine, and a current directory without a ``.worklets``."""
    for key in list(os.environ):
        if key.startswith("WORKLETS_"):
            monkeypatch.delenv(key)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield work


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], clean_env: Path) -> Cli:
    """``cli("invoke", "hello", ...)`` runs ``worklets`` in this process."""

    def run(*argv: str) -> Result:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def cli_process(
    argv: list[str], env: dict[str, str], cwd: Path, stdout: Any, stderr: Any
) -> subprocess.Popen[str]:
    """``worklets ARGV`` as a child process (``python -m cli``), with exactly ``env``'s
    WORKLETS_* settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("WORKLETS_")}
    return subprocess.Popen(
        [sys.executable, "-m", "cli", *argv],
        env={**base, "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        text=True,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
    )
