"""docker-compose.yml is valid, and cannot drift from the code: each Worklets service is started
here with the command and environment the compose file gives it, and must pass the compose
file's own healthcheck."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.servers import SERVICES, Group, Process, free_port, spawn
from services.common.bus import MAX_MSG_BYTES
from services.common.ids import new_id
from services.common.sealing import new_key
from tests.stack import Servers

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
NATS_CONF = ROOT / "deploy" / "nats.conf"
HEALTHY_WITHIN = 60.0  # seconds


def compose_file() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if name in variables:
            return variables[name]
        if op == ":-":
            return arg
        raise AssertionError(f"compose needs ${name} ({arg or 'no default'})")

    return re.sub(r"\$\$|\$\{(\w+)(?:(:[-?])([^}]*))?\}", replace, value)


def test_compose_config_is_valid() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip(
            "docker-compose is not installed (.ci/run installs it: apt-get install docker-compose)"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKLETS_")}
    argv = [binary, "--project-directory", str(ROOT), "-f", str(COMPOSE), "config"]

    with_token = {
        **env,
        "WORKLETS_ADMIN_TOKEN": secrets.token_hex(16),
        "WORKLETS_SECRETS_KEY": new_key(),
    }
    result = subprocess.run(argv, env=with_token, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == {"nats", "mongo", *SERVICES}
    for name in ("gateway", "executor", "scheduler"):  # scalable: docker compose --scale
        assert "container_name" not in services[name]

    for needed in ("WORKLETS_ADMIN_TOKEN", "WORKLETS_SECRETS_KEY"):
        without = {k: v for k, v in with_token.items() if k != needed}
        refused = subprocess.run(argv, env=without, capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0
        assert f"set {needed}" in refused.stderr


def test_services_start_after_what_they_need() -> None:
    services = compose_file()["services"]
    healthy = {"condition": "service_healthy"}
    for name in SERVICES:
        needs = services[name]["depends_on"]
        assert needs["nats"] == healthy, name
        assert all(condition == healthy for condition in needs.values()), name
    assert services["registry"]["depends_on"]["mongo"] == healthy
    for name in ("gateway", "executor", "scheduler"):
        assert services[name]["depends_on"]["registry"] == healthy
    # only the registry gets MongoDB and the admin token; only it and the executor the
    # secrets key
    for name in ("gateway", "executor", "scheduler"):
        env = services[name]["environment"]
        assert "WORKLETS_MONGO_URL" not in env and "WORKLETS_ADMIN_TOKEN" not in env, name
    for name in SERVICES:
        needs_key = name in ("registry", "executor")
        assert ("WORKLETS_SECRETS_KEY" in services[name]["environment"]) == needs_key, name


def test_browsers_reach_the_console_and_the_gateway() -> None:
    """The console (on the registry) calls the gateway cross-origin: the gateway allows the
    registry's published origin, and the registry names the gateway's published address."""
    services = compose_file()["services"]

    def published(name: str, variables: dict[str, str]) -> str:
        [mapping] = services[name]["ports"]
        return interpolate(mapping, variables).split(":")[0]

    for variables in ({}, {"WORKLETS_GATEWAY_PORT": "9000", "WORKLETS_REGISTRY_PORT": "9001"}):
        gateway_env = services["gateway"]["environment"]
        registry_env = services["registry"]["environment"]
        origins = json.loads(interpolate(gateway_env["WORKLETS_CORS_ORIGINS"], variables))
        assert origins == [f"http://localhost:{published('registry', variables)}"]
        public = interpolate(registry_env["WORKLETS_GATEWAY_PUBLIC_URL"], variables)
        assert public == f"http://localhost:{published('gateway', variables)}"
    assert "COPY web ./web" in (ROOT / "Dockerfile").read_text().splitlines()


def test_nats_conf_is_valid_and_allows_the_largest_message() -> None:
    nats_server = Path(sys.executable).with_name("nats-server")
    result = subprocess.run(
        [str(nats_server), "-c", str(NATS_CONF), "-t"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"^max_payload:\s*(\d+)MB", NATS_CONF.read_text(), re.MULTILINE)
    assert match is not None
    assert int(match.group(1)) * 1024 * 1024 >= MAX_MSG_BYTES


def test_image_runs_as_a_non_root_user() -> None:
    lines = [line.split() for line in (ROOT / "Dockerfile").read_text().splitlines() if line]
    users = [words[1] for words in lines if words[0] == "USER"]
    assert users and users[-1] not in ("root", "0")


class Local:
    """A compose service's command and environment, adapted to run on this machine."""

    def __init__(
        self,
        servers: Servers,
        root: Path,
        name: str,
        spec: dict[str, Any],
        variables: dict[str, str],
    ) -> None:
        self.name = name
        self.spec = spec
        nats_host = servers.nats_url.removeprefix("nats://")
        mongo_host = servers.mongo_url.removeprefix("mongodb://")
        self.env: dict[str, str] = {}
        for key, raw in spec.get("environment", {}).items():
            value = interpolate(str(raw), variables)
            value = value.replace("nats:4222", nats_host).replace("mongo:27017", mongo_host)
            if key.endswith("_PORT"):
                value = str(free_port())
            elif key == "WORKLETS_HEALTH_FILE":
                value = str(root / f"{name}.health")
            self.env[key] = value

    def process_env(self, prefix: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("WORKLETS_")}
        bin_dir = str(Path(sys.executable).parent)  # `python` is this interpreter
        return {
            **base,
            **self.env,
            "PATH": f"{bin_dir}{os.pathsep}{base.get('PATH', '')}",
            "WORKLETS_PREFIX": prefix,  # fresh names on the shared test servers
            "WORKLETS_MONGO_DB": prefix,
        }

    def command(self) -> list[str]:
        argv = [str(arg) for arg in self.spec["command"]]
        return [sys.executable if argv[0] == "python" else argv[0], *argv[1:]]

    def healthcheck(self) -> list[str]:
        test = [interpolate(str(arg), {}) for arg in self.spec["healthcheck"]["test"]]
        if test[0] == "CMD-SHELL":
            return ["sh", "-c", test[1]]
        assert test[0] == "CMD", test
        return test[1:]


def wait_healthy(proc: Process, local: Local, env: dict[str, str]) -> None:
    argv = local.healthcheck()
    deadline = time.monotonic() + HEALTHY_WITHIN
    while True:
        assert proc.alive(), f"{local.name} exited:\n{proc.log_tail()}"
        check = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
        if check.returncode == 0:
            return
        assert time.monotonic() < deadline, (
            f"{local.name} not healthy after {HEALTHY_WITHIN:.0f}s: {check.stderr}\n"
            f"{proc.log_tail()}"
        )


@pytest.mark.integration
def test_each_service_runs_as_compose_runs_it(servers: Servers, tmp_path: Path) -> None:
    missing = [s for s in SERVICES if not (ROOT / "services" / s / "__main__.py").exists()]
    assert not missing, f"services without a __main__.py: {missing}"
    specs = compose_file()["services"]
    prefix = "t" + new_id(10)
    variables = {"WORKLETS_ADMIN_TOKEN": secrets.token_hex(16), "WORKLETS_SECRETS_KEY": new_key()}
    group = Group()
    try:
        for name in SERVICES:  # the order of depends_on
            local = Local(servers, tmp_path, name, specs[name], variables)
            env = local.process_env(prefix)
            proc = group.add(spawn(name, local.command(), tmp_path / "logs", env))
            wait_healthy(proc, local, env)
    finally:
        group.stop()
