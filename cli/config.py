"""Where the command line finds the platform: environment first, then ``dev.env``.

``worklets dev`` writes ``$WORKLETS_HOME/dev.env`` (``WORKLETS_HOME`` defaults to ``.worklets``
in the current directory), so every other command works right after it in the same folder.
A variable set in the environment wins over the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cli.client import Registry

DEFAULT_HOME = ".worklets"
ENV_FILE = "dev.env"

DEFAULTS = {
    "WORKLETS_GATEWAY_URL": "http://127.0.0.1:8000",
    "WORKLETS_REGISTRY_URL": "http://127.0.0.1:8001",
    "WORKLETS_NATS_URL": "nats://127.0.0.1:4222",
    "WORKLETS_PREFIX": "worklets",
}


class ConfigError(Exception):
    """Something the command needs is not configured; the message says how to set it."""


def home_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get("WORKLETS_HOME") or DEFAULT_HOME).absolute()


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines; blank lines, comments and malformed lines are skipped."""
    values: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return values
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    """Replace ``path`` atomically, readable by its owner only (it holds secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    tmp.chmod(0o600)
    tmp.replace(path)


@dataclass(frozen=True)
class Config:
    gateway_url: str
    registry_url: str
    nats_url: str
    prefix: str
    admin_token: str | None
    app_id: str | None
    api_key: str | None

    def require_app(self) -> str:
        if not self.app_id:
            raise ConfigError("no application: pass --app or set WORKLETS_APP_ID")
        return self.app_id

    def require_api_key(self) -> str:
        if not self.api_key:
            raise ConfigError("no API key: set WORKLETS_API_KEY (worklets dev writes one)")
        return self.api_key

    def registry(self) -> Registry:
        """A registry client with the admin token, else the API key (role admin)."""
        if not self.admin_token and not self.api_key:
            raise ConfigError("no credentials: set WORKLETS_ADMIN_TOKEN or WORKLETS_API_KEY")
        return Registry(self.registry_url, admin_token=self.admin_token, api_key=self.api_key)


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    values = {**DEFAULTS, **read_env_file(home_dir(environ) / ENV_FILE)}
    values.update({k: v for k, v in environ.items() if k.startswith("WORKLETS_") and v})

    def url(name: str) -> str:
        return values[name].rstrip("/")

    return Config(
        gateway_url=url("WORKLETS_GATEWAY_URL"),
        registry_url=url("WORKLETS_REGISTRY_URL"),
        nats_url=values["WORKLETS_NATS_URL"],
        prefix=values["WORKLETS_PREFIX"],
        admin_token=values.get("WORKLETS_ADMIN_TOKEN"),
        app_id=values.get("WORKLETS_APP_ID"),
        api_key=values.get("WORKLETS_API_KEY"),
    )
