"""``worklets dev``: the whole platform on one machine, with a demo application.

It starts nats-server (JetStream, data in ``$WORKLETS_HOME/nats``), the nx-27017 MongoDB-wire
server (data in ``$WORKLETS_HOME/mongo``) unless ``WORKLETS_MONGO_URL`` names a real MongoDB,
then registry, gateway, executor and scheduler as separate processes, logging to
``$WORKLETS_HOME/logs``. ``WORKLETS_HOME`` defaults to ``.worklets`` in the current directory.

It then seeds, through the registry API, an application ``demo``, an API key, the worklets of
``cli/demo`` (deployed exactly as ``worklets deploy`` does) and its view ``hello-view``, and
writes what a client needs to ``$WORKLETS_HOME/dev.env``. A second start reuses all of it: the
admin token and key kept in ``dev.env``, the application, and worklets and views whose
definition did not change. Secrets are sealed with the key in ``$WORKLETS_HOME/secrets.key``
(made on the first start, mode 600; ``WORKLETS_SECRETS_KEY`` overrides it), given to the
registry and the executor only.

The web console is the registry's ``/console/``; it invokes worklets on the gateway from the
registry's origin, so the gateway is started with that origin in ``WORKLETS_CORS_ORIGINS``
(added to any the environment gives), and the registry with ``WORKLETS_GATEWAY_PUBLIC_URL``.

Ctrl-C, SIGTERM or SIGHUP stops every process it started, newest first, also while it starts;
if one of them dies, it shows that process's log, stops the others and exits with status 1.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import msgspec

from cli.client import ApiError, Json, Registry
from cli.config import ENV_FILE, home_dir, read_env_file, write_env_file
from cli.deploy import DefinitionFileError, Deployed, deploy, load_definition
from cli.output import error_line
from cli.servers import SERVICES, Group, Process, start_mongo, start_nats, start_service
from services.common.sealing import new_key
from shared.schemas import ViewDefinition

DEMO_DIR = Path(__file__).with_name("demo")
DEMO_APP = "demo"
DEMO_WORKLETS = ("greeter.yaml", "hello.yaml")  # in this order: hello calls greeter
DEMO_ENTRY = "hello"
DEMO_VIEWS = ("hello-view.json",)  # after the worklets they invoke

HOST = "127.0.0.1"
PORTS = {
    "gateway": ("WORKLETS_GATEWAY_PORT", 8000),
    "registry": ("WORKLETS_REGISTRY_PORT", 8001),
    "nats": ("WORKLETS_NATS_PORT", 4222),
    "mongo": ("WORKLETS_MONGO_PORT", 27017),
}
# Never handed to a service that does not need them (user code runs under the executor).
SECRETS = ("WORKLETS_ADMIN_TOKEN", "WORKLETS_MONGO_URL", "WORKLETS_API_KEY", "WORKLETS_SECRETS_KEY")
SECRETS_KEY_FILE = "secrets.key"  # under WORKLETS_HOME: the key secrets are sealed with
START_TIMEOUT = 60.0  # seconds for one service to become ready
STOP_TIMEOUT = 15.0  # seconds for one process to stop before it is killed
WATCH_INTERVAL = 0.5
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: the terminal closed


class DevError(Exception):
    """The dev stack cannot start; the message says why and what to do."""


class Stopped(Exception):
    """SIGINT, SIGTERM or SIGHUP arrived."""


class ChildDied(Exception):
    def __init__(self, proc: Process) -> None:
        self.proc = proc
        super().__init__(
            f"{proc.name} exited unexpectedly (status {proc.popen.returncode}); "
            f"last lines of {proc.log_path}:\n{proc.log_tail()}"
        )


def say(text: str = "") -> None:
    print(text, flush=True)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def read_ports(environ: Mapping[str, str], embedded_mongo: bool) -> dict[str, int]:
    """The ports to use, each checked free; DevError names the variable to change."""
    ports: dict[str, int] = {}
    for name, (variable, default) in PORTS.items():
        if name == "mongo" and not embedded_mongo:
            continue
        raw = environ.get(variable) or str(default)
        try:
            port = int(raw)
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            raise DevError(f"{variable}={raw!r} is not a port number") from None
        if port in ports.values():
            raise DevError(f"{variable}={port} is already used by another Worklets server")
        if not _port_free(port):
            raise DevError(
                f"port {port} for {name} is already in use (is another `worklets dev` running?); "
                f"stop what uses it, or choose another port with {variable}=..."
            )
        ports[name] = port
    return ports


@dataclass(frozen=True)
class Seeded:
    app_id: str
    api_key: str
    worklets: dict[str, Deployed]
    views: dict[str, DeployedView] = field(default_factory=dict)


@dataclass(frozen=True)
class DeployedView:
    id: str
    name: str
    url: str  # its published page
    action: Literal["created", "updated", "unchanged"]


def load_view(path: Path) -> Json:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DefinitionFileError(f"{path}: not a readable JSON view: {err}") from None
    if not isinstance(data, dict):
        raise DefinitionFileError(f"{path}: a view is an object with `name` and `components`")
    return data


def _comparable_view(definition: Any) -> ViewDefinition | None:
    """The view as the platform sees it, without the worklet ids the registry resolves."""
    try:
        view = msgspec.json.decode(json.dumps(definition), type=ViewDefinition)
    except (msgspec.ValidationError, TypeError, ValueError):
        return None
    components = []
    for c in view.components:
        on = {e: msgspec.structs.replace(h, worklet_id=None) for e, h in c.on.items()}
        bound = None if c.binding is None else msgspec.structs.replace(c.binding, worklet_id=None)
        components.append(msgspec.structs.replace(c, on=on, binding=bound))
    return msgspec.structs.replace(view, components=components)


def deploy_view(registry: Registry, app: str, definition: Json) -> DeployedView:
    """Create the view named in ``definition``, or update it if its definition changed."""
    base = f"/v1/applications/{app}/views"
    listed: list[Json] = registry.request("GET", base, (200,))["items"]
    existing = next((v for v in listed if v.get("name") == definition.get("name")), None)
    if existing is None:
        made: Json = registry.request("POST", base, (201,), json=definition)
        return DeployedView(made["id"], made["name"], made["url"], "created")
    current: Json = registry.request("GET", f"{base}/{existing['id']}", (200,))
    wanted = _comparable_view(definition)
    if wanted is not None and wanted == _comparable_view(current.get("definition")):
        return DeployedView(current["id"], current["name"], current["url"], "unchanged")
    updated: Json = registry.request("PUT", f"{base}/{existing['id']}", (200,), json=definition)
    return DeployedView(updated["id"], updated["name"], updated["url"], "updated")


def _key_works(registry_url: str, app_id: str, key: str) -> bool:
    with Registry(registry_url, api_key=key) as as_key:
        try:
            as_key.get_application(app_id)
        except ApiError as err:
            if err.status in (401, 403):
                return False
            raise
    return True


def seed(registry: Registry, previous: Mapping[str, str]) -> Seeded:
    """The demo application, a working API key and the demo worklets, reusing what exists."""
    app_id = None
    if previous.get("WORKLETS_APP_ID"):
        try:
            app_id = registry.get_application(previous["WORKLETS_APP_ID"])["id"]
        except ApiError as err:
            if err.status != 404:
                raise
    if app_id is None:
        same_name = [a for a in registry.list_applications() if a.get("name") == DEMO_APP]
        app = same_name[0] if same_name else registry.create_application(DEMO_APP)
        app_id = str(app["id"])
    key = previous.get("WORKLETS_API_KEY")
    if not key or not _key_works(registry.base_url, app_id, key):
        key = str(registry.create_api_key(app_id, "dev")["key"])
    worklets = {}
    for file in DEMO_WORKLETS:
        deployed = deploy(registry, app_id, load_definition(DEMO_DIR / file))
        worklets[deployed.name] = deployed
    views = {}
    for file in DEMO_VIEWS:
        view = deploy_view(registry, app_id, load_view(DEMO_DIR / file))
        views[view.name] = view
    return Seeded(app_id, key, worklets, views)


def secrets_key(home: Path) -> str:
    """The key of this home's secrets: kept in ``secrets.key`` (mode 600), made on first use.
    Losing it loses the secrets' values, so it is never rewritten."""
    path = home / SECRETS_KEY_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    home.mkdir(parents=True, exist_ok=True)
    key = new_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    return key


class DevStack:
    def __init__(self, home: Path, environ: Mapping[str, str]) -> None:
        self.home = home
        self.environ = environ
        self.external_mongo = environ.get("WORKLETS_MONGO_URL") or None
        self.ports = read_ports(environ, embedded_mongo=self.external_mongo is None)
        self.previous = read_env_file(home / ENV_FILE)
        self.admin_token = (
            environ.get("WORKLETS_ADMIN_TOKEN")
            or self.previous.get("WORKLETS_ADMIN_TOKEN")
            or secrets.token_urlsafe(24)
        )
        self.secrets_key = environ.get("WORKLETS_SECRETS_KEY") or secrets_key(home)
        self.logs = home / "logs"
        self.group = Group()
        self.gateway_origins = self.cors_origins()  # checked before anything starts

    @property
    def gateway_url(self) -> str:
        return f"http://{HOST}:{self.ports['gateway']}"

    @property
    def registry_url(self) -> str:
        return f"http://{HOST}:{self.ports['registry']}"

    @property
    def console_url(self) -> str:
        return f"{self.registry_url}/console/"

    @property
    def nats_url(self) -> str:
        return f"nats://{HOST}:{self.ports['nats']}"

    def cors_origins(self) -> list[str]:
        """The gateway's CORS origins: the environment's, and the registry's (the console's
        origin, under both names a browser on this machine may use)."""
        origins: list[str] = []
        raw = self.environ.get("WORKLETS_CORS_ORIGINS")
        if raw:
            try:
                given = json.loads(raw)
            except ValueError:
                raise DevError(
                    f"WORKLETS_CORS_ORIGINS={raw!r} is not a JSON list of origins"
                ) from None
            if not isinstance(given, list) or not all(isinstance(o, str) for o in given):
                raise DevError(f"WORKLETS_CORS_ORIGINS={raw!r} is not a JSON list of origins")
            origins.extend(given)
        port = self.ports["registry"]
        for origin in (f"http://{HOST}:{port}", f"http://localhost:{port}"):
            if origin not in origins:
                origins.append(origin)
        return origins

    @property
    def mongo_url(self) -> str:
        return self.external_mongo or f"mongodb://{HOST}:{self.ports['mongo']}"

    def _rotate_logs(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for log in self.logs.glob("*.log"):
            log.replace(log.with_suffix(".log.1"))

    def service_env(self, service: str) -> dict[str, str]:
        env = {"WORKLETS_NATS_URL": self.nats_url}
        if service in ("gateway", "registry"):
            env |= {"WORKLETS_HOST": HOST, "WORKLETS_PORT": str(self.ports[service])}
        else:
            env["WORKLETS_HEALTH_FILE"] = str(self.home / "run" / f"{service}.health")
        if service in ("registry", "executor"):
            env["WORKLETS_SECRETS_KEY"] = self.secrets_key
        if service == "registry":
            env |= {
                "WORKLETS_MONGO_URL": self.mongo_url,
                "WORKLETS_ADMIN_TOKEN": self.admin_token,
                "WORKLETS_GATEWAY_PUBLIC_URL": self.gateway_url,
            }
        if service == "gateway":
            env["WORKLETS_CORS_ORIGINS"] = json.dumps(self.gateway_origins)
        return env

    def start(self) -> None:
        self._rotate_logs()
        say(f"starting nats-server on {self.nats_url}")
        self.group.add(start_nats(self.home / "nats", self.ports["nats"], HOST, self.logs))
        if self.external_mongo:
            say(f"using MongoDB at {self.external_mongo}")
        else:
            say(f"starting nx-27017 on {self.mongo_url}")
            self.group.add(start_mongo(self.home / "mongo", self.ports["mongo"], HOST, self.logs))
        base_env = {k: v for k, v in self.environ.items() if k not in SECRETS}
        for service in SERVICES:
            say(f"starting {service}")
            proc = start_service(
                service, self.service_env(service), self.logs, base_env=base_env,
                timeout=START_TIMEOUT,
            )  # fmt: skip
            self.group.add(proc)

    def client_env(self, seeded: Seeded) -> dict[str, str]:
        values = {
            "WORKLETS_GATEWAY_URL": self.gateway_url,
            "WORKLETS_REGISTRY_URL": self.registry_url,
            "WORKLETS_CONSOLE_URL": self.console_url,
            "WORKLETS_NATS_URL": self.nats_url,
            "WORKLETS_ADMIN_TOKEN": self.admin_token,
            "WORKLETS_APP_ID": seeded.app_id,
            "WORKLETS_API_KEY": seeded.api_key,
            "WORKLETS_WORKLET_ID": seeded.worklets[DEMO_ENTRY].id,
        }
        prefix = self.environ.get("WORKLETS_PREFIX")
        if prefix:
            values["WORKLETS_PREFIX"] = prefix
        return values

    def seed(self) -> Seeded:
        say(f"seeding application {DEMO_APP!r}")
        with Registry(self.registry_url, admin_token=self.admin_token) as registry:
            seeded = seed(registry, self.previous)
        for w in seeded.worklets.values():
            say(f"  worklet {w.name}: id {w.id} version {w.version} ({w.action})")
        for v in seeded.views.values():
            say(f"  view {v.name}: id {v.id} ({v.action}) {v.url}")
        write_env_file(self.home / ENV_FILE, self.client_env(seeded))
        return seeded

    def banner(self, seeded: Seeded) -> None:
        app, key = seeded.app_id, seeded.api_key
        hello = seeded.worklets[DEMO_ENTRY].id
        base = f"{self.gateway_url}/applications/{app}/worklets/{hello}"
        auth = f"-H 'Authorization: Api-Key {key}'"
        json_type = "-H 'Content-Type: application/json'"
        example = os.path.relpath(DEMO_DIR / f"{DEMO_ENTRY}.yaml")
        views = "\n".join(
            f"  view           {v.url}  ({v.name}; sign in with the API key)"
            for v in seeded.views.values()
        )
        say(
            f"""
Worklets is running. Press Ctrl-C to stop.

  console        {self.console_url}  (sign in with the API key below)
  gateway        {self.gateway_url}
  registry       {self.registry_url}
  registry docs  {self.registry_url}/docs
  NATS           {self.nats_url}
  logs           {self.logs}

  admin token    {self.admin_token}
  application    {DEMO_APP} ({app})
  API key        {key}
  worklets       {", ".join(f"{w.name} ({w.id})" for w in seeded.worklets.values())}
{views}

Invoke {DEMO_ENTRY} and wait for its answer:
  curl -X POST {base}/invoke \\
    {auth} {json_type} \\
    -d '{{"worklet_input": {{"name": "Ada"}}}}'

Run it in the background:
  curl -X POST {base}/invoke \\
    {auth} {json_type} \\
    -d '{{"worklet_input": {{"name": "Ada"}}, "async": true}}'

Poll the background run (RUN_ID is its scheduled_worklet_run_id):
  curl -X POST {base}/RUN_ID \\
    {auth}

Or use the command line in another shell, in this folder:
  worklets invoke {DEMO_ENTRY} --input '{{"name": "Ada"}}' --trace
  worklets deploy {example}
  worklets runs
  worklets events

Settings for other tools: {self.home / ENV_FILE}
"""
        )

    def watch(self, signals: Signals) -> None:
        """Until a signal arrives (then raise Stopped) or a process exits (raise ChildDied)."""
        while signals.received is None:
            for proc in self.group.processes:
                if not proc.alive():
                    raise ChildDied(proc)
            time.sleep(WATCH_INTERVAL)
        raise Stopped(signals.received)


class Signals:
    """SIGINT, SIGTERM and SIGHUP. While the stack starts, one interrupts the start (Stopped);
    once it runs, it is noted for ``watch``; while the stack stops, another one kills at once."""

    def __init__(self, group: Group) -> None:
        self.group = group
        self.phase: Literal["starting", "running", "stopping"] = "starting"
        self.received: str | None = None
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.phase == "stopping":
            for proc in self.group.processes:
                proc.kill()
            return
        self.received = signal.Signals(signum).name
        if self.phase == "starting":
            raise Stopped(self.received)


def main(environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    home = home_dir(environ)
    try:
        stack = DevStack(home, environ)
    except DevError as err:
        error_line(str(err))
        return 1
    signals = Signals(stack.group)
    status = 1
    try:
        stack.start()
        stack.banner(stack.seed())
        signals.phase = "running"
        stack.watch(signals)
    except Stopped as stop:
        say(f"\n{stop}: stopping")
        status = 0
    except ChildDied as err:
        error_line(str(err))
    except (RuntimeError, TimeoutError, FileNotFoundError) as err:  # a server did not start
        error_line(str(err))
    except (ApiError, DefinitionFileError) as err:
        error_line(f"seeding the demo application failed: {err}")
    finally:
        signals.phase = "stopping"
        stack.group.stop(STOP_TIMEOUT)
        say("stopped")
    return status
