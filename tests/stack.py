"""A stack of Worklets services started as real processes against the session's servers."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from cli.servers import SERVICES, Group, Process, free_port, start_service
from services.common.ids import new_id
from services.common.sealing import new_key
from shared.subjects import Names


@dataclass(frozen=True)
class Servers:
    nats_url: str
    mongo_url: str
    root: Path


class Stack:
    """Services with a fresh prefix and database; ``env`` overrides any setting."""

    def __init__(self, servers: Servers, root: Path, **env: str) -> None:
        self.servers = servers
        self.root = root
        self.prefix = "t" + new_id(10)
        self.admin_token = secrets.token_hex(16)
        self.secrets_key = new_key()
        self.gateway_port = free_port()
        self.registry_port = free_port()
        self.extra_env = env
        self.group = Group()
        self.processes: dict[str, Process] = {}

    @property
    def names(self) -> Names:
        return Names(self.prefix)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def registry_url(self) -> str:
        return f"http://127.0.0.1:{self.registry_port}"

    def env(self, service: str, name: str | None = None) -> dict[str, str]:
        env = {
            "WORKLETS_NATS_URL": self.servers.nats_url,
            "WORKLETS_PREFIX": self.prefix,
            "WORKLETS_MONGO_URL": self.servers.mongo_url,
            "WORKLETS_MONGO_DB": self.prefix,
            "WORKLETS_ADMIN_TOKEN": self.admin_token,
            "WORKLETS_SECRETS_KEY": self.secrets_key,
            "WORKLETS_LOG_LEVEL": "INFO",
        }
        if service == "gateway":
            env["WORKLETS_PORT"] = str(self.gateway_port)
        elif service == "registry":
            env["WORKLETS_PORT"] = str(self.registry_port)
        else:
            env["WORKLETS_HEALTH_FILE"] = str(self.root / f"{name or service}.health")
        if service != "registry":
            env.pop("WORKLETS_MONGO_URL")  # only the registry talks to MongoDB
            env.pop("WORKLETS_ADMIN_TOKEN")
        if service not in ("registry", "executor"):
            env.pop("WORKLETS_SECRETS_KEY")  # only they seal and open secrets
        env.update(self.extra_env)
        return env

    def start(self, service: str, name: str | None = None, **env: str) -> Process:
        name = name or service
        proc = start_service(service, {**self.env(service, name), **env}, self.root / "logs", name)
        self.group.add(proc)
        self.processes[name] = proc
        return proc

    def start_all(self) -> None:
        for service in SERVICES:
            self.start(service)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log_tail(60)}" for p in self.group.processes)

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.group.stop()

    # ------------------------------------------------------------- registry shortcuts

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.registry_url,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=30,
        )

    def create_app(self, name: str = "test") -> tuple[str, str]:
        """A new application and an admin API key for it: (app_id, key)."""
        with self.admin() as client:
            app = client.post("/v1/applications", json={"name": name})
            app.raise_for_status()
            app_id = app.json()["id"]
            key = client.post(f"/v1/applications/{app_id}/api-keys", json={"name": "test"})
            key.raise_for_status()
            return app_id, key.json()["key"]

    def deploy(self, app_id: str, definition: dict[str, Any]) -> dict[str, Any]:
        with self.admin() as client:
            r = client.post(f"/v1/applications/{app_id}/worklets", json=definition)
            assert r.status_code == 201, r.text
            result: dict[str, Any] = r.json()
            return result


def code_worklet(name: str, source: str, **settings: Any) -> dict[str, Any]:
    """A one-block worklet running ``source``."""
    definition: dict[str, Any] = {
        "name": name,
        "blocks": [{"id": "main", "type": "code", "source": source}],
    }
    if settings:
        definition["settings"] = settings
    return definition


__all__ = ["Servers", "Stack", "code_worklet", "new_id"]
