"""Every NATS subject, stream, consumer and key-value name, in one place.

All names derive from one prefix (setting ``WORKLETS_PREFIX``, default ``worklets``) so that
tests can run side by side on one nats-server with fresh names.

Public subjects (documented in README):
    {p}.runs.{app}.{worklet}             run requests (stream {P}_RUNS, work queue)
    {p}.events.{app}.{worklet}.{run}     run events, JSON (stream {P}_EVENTS)
Internal subjects:
    {p}.results.{gateway}                terminal events for a gateway's synchronous waits (core)
    {p}.registry.runs.get                poll look-up answered by the registry (request/reply)
    {p}.changes.{app}                    "something of this application changed" broadcasts (core)
Key-value bucket {P}_INDEX (the read model the registry maintains from MongoDB):
    key.{sha256 of api key}              ApiKeyEntry
    worklet.{app}.{worklet}              WorkletHead (current version and settings)
    version.{app}.{worklet}.{n}          WorkletVersion (immutable definition)
    secret.{app}.{name}                  SecretEntry
    schedule.{app}.{worklet}             ScheduleEntry
    view.{app}.{view}                    ViewEntry
Key-value bucket {P}_SCHEDULER (the scheduler's own state, written by scheduler replicas):
    last.{schedule}                      the run id of the schedule's last fired slot
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Ids that go into subjects and KV keys must never contain '.', '*', '>' or whitespace.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SECRET_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")

EXECUTORS_CONSUMER = "executors"
REGISTRY_CONSUMER = "registry"
REGISTRY_QUEUE = "registry"


def is_id(value: str) -> bool:
    return ID_PATTERN.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Names:
    """Subject and stream names for one prefix."""

    prefix: str = "worklets"

    # streams and buckets
    @property
    def runs_stream(self) -> str:
        return f"{self.prefix.upper()}_RUNS"

    @property
    def events_stream(self) -> str:
        return f"{self.prefix.upper()}_EVENTS"

    @property
    def index_bucket(self) -> str:
        return f"{self.prefix.upper()}_INDEX"

    @property
    def scheduler_bucket(self) -> str:
        return f"{self.prefix.upper()}_SCHEDULER"

    # subjects
    def runs(self, app: str, worklet: str) -> str:
        return f"{self.prefix}.runs.{app}.{worklet}"

    @property
    def runs_all(self) -> str:
        return f"{self.prefix}.runs.>"

    def events(self, app: str, worklet: str, run: str) -> str:
        return f"{self.prefix}.events.{app}.{worklet}.{run}"

    def events_of_app(self, app: str) -> str:
        return f"{self.prefix}.events.{app}.>"

    @property
    def events_all(self) -> str:
        return f"{self.prefix}.events.>"

    def results(self, gateway: str) -> str:
        return f"{self.prefix}.results.{gateway}"

    @property
    def registry_runs_get(self) -> str:
        return f"{self.prefix}.registry.runs.get"

    def changes(self, app: str) -> str:
        return f"{self.prefix}.changes.{app}"

    # key-value keys
    @staticmethod
    def key_entry(key_hash: str) -> str:
        return f"key.{key_hash}"

    @staticmethod
    def worklet_head(app: str, worklet: str) -> str:
        return f"worklet.{app}.{worklet}"

    @staticmethod
    def worklet_version(app: str, worklet: str, version: int) -> str:
        return f"version.{app}.{worklet}.{version}"

    @staticmethod
    def secret(app: str, name: str) -> str:
        return f"secret.{app}.{name}"

    @staticmethod
    def schedule(app: str, worklet: str) -> str:
        return f"schedule.{app}.{worklet}"

    @staticmethod
    def view(app: str, view: str) -> str:
        return f"view.{app}.{view}"

    @staticmethod
    def last_fired(schedule: str) -> str:
        return f"last.{schedule}"


# Headers
MSG_ID = "Nats-Msg-Id"
EVENT_KIND_HEADER = "Worklets-Event"
ERROR_HEADER = "Worklets-Error"
