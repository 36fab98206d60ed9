"""Settings of every service, read from ``WORKLETS_*`` environment variables.

Required secrets (the registry's admin token) have no default; ``make dev`` supplies them.
"""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.schemas import WorkletSettings
from shared.subjects import Names

MiB = 1024 * 1024
# WORKLETS_SECRETS_KEY: 32 bytes in URL-safe base64 (services/common/sealing.py makes one)
SECRETS_KEY_PATTERN = r"^[A-Za-z0-9_-]{43}=?$"
SecretsKey = Annotated[str, Field(pattern=SECRETS_KEY_PATTERN)]


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WORKLETS_", extra="ignore")

    nats_url: str = "nats://127.0.0.1:4222"
    prefix: str = Field(default="worklets", pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    log_level: str = "INFO"
    # run limits, applied wherever a run request is made
    default_timeout: float = Field(default=300.0, gt=0)  # seconds, synchronous runs
    background_timeout: float = Field(default=3600.0, gt=0)  # seconds, background runs
    max_depth: int = Field(default=8, ge=1)  # nesting of worklet blocks

    @property
    def names(self) -> Names:
        return Names(self.prefix)

    def run_timeout(self, worklet: WorkletSettings, background: bool) -> float:
        """A run's limit: the worklet's own, else the platform's; a background run has the
        longer background limit."""
        if background:
            own = worklet.background_timeout
            return self.background_timeout if own is None else own
        return self.default_timeout if worklet.timeout is None else worklet.timeout


class GatewaySettings(CommonSettings):
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = Field(default=1 * MiB, gt=0)
    sync_wait_margin: float = Field(default=5.0, ge=0)  # seconds waited past a run's timeout
    cors_origins: list[str] = Field(default_factory=list)


class RegistrySettings(CommonSettings):
    host: str = "127.0.0.1"
    port: int = 8001
    mongo_url: str = "mongodb://127.0.0.1:27017"
    mongo_db: str = "worklets"
    admin_token: str = Field(min_length=16)
    secrets_key: str = Field(pattern=SECRETS_KEY_PATTERN, repr=False)  # seals secrets at rest
    secrets_previous_keys: list[SecretsKey] = Field(default_factory=list, repr=False)
    persist_batch: int = Field(default=1000, gt=0)  # events per MongoDB bulk write
    max_definition_bytes: int = Field(default=1 * MiB, gt=0)
    # where browsers reach the gateway: the published views' URLs and the console's config
    gateway_public_url: str = "http://127.0.0.1:8000"


class ExecutorSettings(CommonSettings):
    workers: int = Field(default_factory=lambda: max(2, os.cpu_count() or 2), ge=1)
    concurrency: int = Field(default=64, ge=1)  # runs in flight per executor
    worker_memory_mb: int = Field(default=512, ge=64)
    worker_user: str = "nobody"  # workers drop to this user when the executor runs as root
    secrets_key: str = Field(pattern=SECRETS_KEY_PATTERN, repr=False)  # opens sealed secrets
    secrets_previous_keys: list[SecretsKey] = Field(default_factory=list, repr=False)
    ack_wait: float = Field(default=30.0, gt=0)  # seconds; in-progress acks keep long runs
    max_deliveries: int = Field(default=5, ge=1)  # a run redelivered more often fails
    max_output_bytes: int = Field(default=2 * MiB, gt=0)
    max_trace_bytes: int = Field(default=2 * MiB, gt=0)
    block_events: bool = True  # publish block_finished events
    shutdown_grace: float = Field(default=10.0, ge=0)
    health_file: str | None = None


class SchedulerSettings(CommonSettings):
    health_file: str | None = None
    # seconds a slot may be fired late (a scheduler that was down briefly fires it once on
    # start); below the RUNS stream's 10-minute duplicate window, which keeps replicas and
    # late firings from queueing a slot twice
    misfire_grace: float = Field(default=60.0, gt=0, lt=600)
