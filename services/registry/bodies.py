"""Request and response bodies of the registry API, and reading/writing them with msgspec.

Bodies are read as raw bytes (at most ``max_definition_bytes``) and decoded with msgspec, so
every mistake is reported with its place, e.g. ``Expected `str`, got `int` - at `$.name```.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeVar

import msgspec
from fastapi import Request
from fastapi.responses import Response
from msgspec import UNSET, Raw, Struct, UnsetType

from services.registry.errors import InvalidRequest, PayloadTooLarge, RegistryError
from shared.schemas import (
    Definition,
    Role,
    Status,
    Trigger,
    ViewDefinition,
    WorkletSettings,
    encoder,
)

T = TypeVar("T")

# ---------------------------------------------------------------- requests


class NewApplication(Struct, kw_only=True, forbid_unknown_fields=True):
    name: str


class NewKey(Struct, kw_only=True, forbid_unknown_fields=True):
    name: str = ""
    role: Role = "admin"


class SecretValue(Struct, kw_only=True, forbid_unknown_fields=True):
    value: str


# ---------------------------------------------------------------- answers


class Application(Struct, kw_only=True):
    id: str
    name: str
    created_at: datetime


class ApplicationList(Struct, kw_only=True):
    items: list[Application]


class CreatedKey(Struct, kw_only=True):
    id: str
    name: str
    role: Role
    key: str  # shown this once; only its sha256 is stored
    created_at: datetime


class KeyInfo(Struct, kw_only=True):
    id: str
    name: str
    role: Role
    created_at: datetime


class KeyList(Struct, kw_only=True):
    items: list[KeyInfo]


class WorkletSummary(Struct, kw_only=True):
    id: str
    name: str
    version: int
    settings: WorkletSettings
    created_at: datetime
    updated_at: datetime


class WorkletList(Struct, kw_only=True):
    items: list[WorkletSummary]


class Worklet(Struct, kw_only=True):
    id: str
    app_id: str
    name: str
    version: int
    settings: WorkletSettings
    definition: Definition
    created_at: datetime
    updated_at: datetime


class VersionInfo(Struct, kw_only=True):
    version: int
    name: str
    created_at: datetime


class VersionList(Struct, kw_only=True):
    items: list[VersionInfo]


class SecretInfo(Struct, kw_only=True):
    name: str
    updated_at: datetime


class SecretList(Struct, kw_only=True):
    items: list[SecretInfo]


class RunSummary(Struct, kw_only=True):
    run_id: str
    worklet_id: str
    version: int
    trigger: Trigger
    status: Status
    latency_ms: int | None = None
    parent_run_id: str | None = None
    schedule_id: str | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class RunDetail(RunSummary, kw_only=True):
    input: Raw  # the worklet input, as the caller sent it
    worklet_output: Raw
    error: Raw  # a RunError, or null
    attempts: int
    trace: Raw  # a list of BlockTrace: input, output, logs, duration, next, error per block


class RunPage(Struct, kw_only=True):
    items: list[RunSummary]
    next_cursor: str | None = None


class LastRun(Struct, kw_only=True):
    run_id: str
    status: Status
    queued_at: datetime | None = None


class Schedule(Struct, kw_only=True):
    """A worklet's schedule: the ``ScheduleSpec`` as stored (exactly one of ``cron``, ``every``
    and ``at``), its next fire times in its time zone, and its last scheduled run."""

    worklet_id: str
    worklet_name: str
    schedule_id: str
    cron: str | UnsetType = UNSET
    every: str | UnsetType = UNSET
    at: datetime | UnsetType = UNSET
    timezone: str
    input: Raw
    background: bool
    enabled: bool
    overlap: Literal["skip", "allow"]
    next_fire_times: list[datetime]  # the next 5; none when disabled or a past one-off
    last_run: LastRun | None  # the newest run of this schedule, a skipped slot included
    skipped: int  # slots skipped because the previous scheduled run was still running
    created_at: datetime
    updated_at: datetime


class ScheduleList(Struct, kw_only=True):
    items: list[Schedule]


class View(Struct, kw_only=True):
    """A view: its definition (worklet references resolved to ids) and its published page."""

    id: str
    app_id: str
    name: str
    title: str
    definition: ViewDefinition
    url: str  # the published page: {WORKLETS_GATEWAY_PUBLIC_URL}/views/{app}/{id}
    created_at: datetime
    updated_at: datetime


class ViewSummary(Struct, kw_only=True):
    id: str
    name: str
    title: str
    url: str
    updated_at: datetime


class ViewList(Struct, kw_only=True):
    items: list[ViewSummary]


class KeyIdentity(Struct, kw_only=True):
    """``GET /v1/me`` with an API key: what the key is."""

    app_id: str
    role: Role
    key_id: str


class AdminIdentity(Struct, kw_only=True):
    """``GET /v1/me`` with the admin token."""

    admin: bool = True


# ---------------------------------------------------------------- reading and writing


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) anything longer than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is larger than the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def decode(body: bytes, type_: type[T], error: type[RegistryError] = InvalidRequest) -> T:
    """Decode JSON ``body`` as ``type_``; ``error`` carries a message that says where."""
    if not body.strip():
        raise error("the body is empty; send a JSON object")
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as err:
        message = str(err)
        raise error(message if " - at `" in message else f"{message} - at `$`") from None
    except msgspec.DecodeError as err:
        problem = str(err)
        if "(byte " not in problem:  # "Input data was truncated": say where it stopped
            problem = f"{problem} (the body has {len(body)} bytes)"
        raise error(f"the body is not valid JSON: {problem}") from None


def item_id_at(body: bytes, message: str, array: str) -> str | None:
    """The ``id`` of the item of ``array`` a decoding error points into (``$.blocks[3]...``)."""
    marker = f"at `$.{array}["
    if marker not in message:
        return None
    index = message.split(marker, 1)[1].split("]", 1)[0]
    try:
        item = msgspec.json.decode(body)[array][int(index)]
        return item["id"] if isinstance(item["id"], str) else None
    except (msgspec.DecodeError, LookupError, TypeError, ValueError):
        return None


def reply(body: Any, status_code: int = 200) -> Response:
    return Response(encoder.encode(body), status_code=status_code, media_type="application/json")


def no_content() -> Response:
    return Response(status_code=204)
