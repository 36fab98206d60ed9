"""Every message and stored entry, as msgspec Structs.

Evolve by adding fields with defaults; never change a field's type in place. Public subjects
carry JSON. User data (inputs, outputs) travels as ``msgspec.Raw`` so it is never re-encoded.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

import msgspec
from msgspec import Raw, Struct, field

NULL = Raw(b"null")

Trigger = Literal["api", "api_async", "schedule", "view", "worklet"]
Role = Literal["admin", "invoke"]


class Status(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    CANCELLED = "CANCELLED"


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.TIMED_OUT, Status.CANCELLED})

# A run's state only moves forward: a record is never overwritten by a lower rank.
RANK = {
    Status.QUEUED: 1,
    Status.RUNNING: 2,
    Status.SUCCEEDED: 3,
    Status.FAILED: 3,
    Status.TIMED_OUT: 3,
    Status.CANCELLED: 3,
}


# ---------------------------------------------------------------- worklet definitions


class CodeBlock(Struct, kw_only=True, tag="code", tag_field="type", forbid_unknown_fields=True):
    """Python source defining a function ``f(block_input, env, context)`` (each optional)."""

    id: str
    source: str
    function: str | None = None  # None: the only top-level function, or `main`
    next: str | None = None  # None: this block's output is the worklet's output
    description: str = ""


class Condition(Struct, kw_only=True, forbid_unknown_fields=True):
    when: str  # an expression over `input` and `env`, e.g. `input.name == ""`
    next: str


class DecisionBlock(
    Struct, kw_only=True, tag="decision", tag_field="type", forbid_unknown_fields=True
):
    """Ordered conditions choosing the next block; passes its input through unchanged."""

    id: str
    conditions: list[Condition] = field(default_factory=list)
    default: str | None = None  # None: the run ends with this block's input as output
    description: str = ""


class WorkletBlock(
    Struct, kw_only=True, tag="worklet", tag_field="type", forbid_unknown_fields=True
):
    """Runs another worklet of the same application as a child run."""

    id: str
    worklet: str  # id or name, as the user wrote it
    worklet_id: str | None = None  # resolved by the registry when the definition is saved
    next: str | None = None
    description: str = ""


Block = CodeBlock | DecisionBlock | WorkletBlock


class WorkletSettings(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    timeout: float | None = None  # seconds; None: the platform default (300 s)
    background: bool = False  # "Run worklet as background task"
    background_timeout: float | None = None  # seconds; None: the platform default


class Definition(Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    blocks: list[Block]
    description: str = ""
    entry: str | None = None  # None: the first block
    settings: WorkletSettings = field(default_factory=WorkletSettings)


# ---------------------------------------------------------------- key-value read model


class ApiKeyEntry(Struct, kw_only=True):
    key_id: str
    app_id: str
    role: Role = "admin"


class WorkletHead(Struct, kw_only=True):
    app_id: str
    worklet_id: str
    name: str
    version: int
    settings: WorkletSettings = field(default_factory=WorkletSettings)


class WorkletVersion(Struct, kw_only=True):
    app_id: str
    worklet_id: str
    version: int
    definition: Definition
    created_at: datetime


class SecretEntry(Struct, kw_only=True):
    app_id: str
    name: str
    sealed: str  # the value, sealed under WORKLETS_SECRETS_KEY (services/common/sealing.py)


# ---------------------------------------------------------------- schedules


class ScheduleSpec(Struct, kw_only=True, forbid_unknown_fields=True):
    """A worklet's schedule as a user writes it (``PUT .../worklets/{id}/schedule``)."""

    cron: str | None = None  # five fields: minute hour day-of-month month day-of-week
    every: str | None = None  # "30s", "15m", "1h", "1h30m"; at least one second
    at: datetime | None = None  # ISO 8601, one-off; without an offset it is in `timezone`
    timezone: str = "UTC"  # IANA name
    input: Raw = NULL  # worklet_input of every scheduled run
    background: bool = True  # scheduled runs are background runs (their longer limit)
    enabled: bool = True
    overlap: Literal["skip", "allow"] = "skip"


class ScheduleEntry(Struct, kw_only=True):
    """The read model of one schedule (``schedule.{app}.{worklet}``), which the scheduler follows."""

    schedule_id: str
    app_id: str
    worklet_id: str
    spec: ScheduleSpec
    anchor: datetime  # origin of an `every` schedule's slots, the same on every replica
    updated_at: datetime


# ---------------------------------------------------------------- views

ComponentType = Literal[
    "text_input", "number_input", "select", "checkbox", "button", "text", "table", "json", "image"
]


class Handler(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """On a component event: invoke a worklet with an input built from other components, then
    assign (parts of) its output to components."""

    worklet: str  # id or name of a worklet of the view's application
    worklet_id: str | None = None  # resolved by the registry when the view is saved
    # JSON template: a string "{{component.value}}" is replaced by that value (keeping its type);
    # inside a longer string it is replaced by its text.
    input: Raw = NULL
    # target component id -> path in the output ("" = the whole output, "rows", "items.0.name")
    assign: dict[str, str] = field(default_factory=dict)


class Binding(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A component's value is a worklet's output, run again when an input it uses changes."""

    worklet: str
    worklet_id: str | None = None
    input: Raw = NULL  # JSON template, as for Handler
    path: str = ""  # the part of the output that becomes the value
    debounce_ms: int = 250


class Component(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    id: str
    type: ComponentType
    label: str = ""
    value: Raw = NULL  # the initial value (text, number, bool, list of rows, JSON, image URL)
    placeholder: str = ""
    options: list[Raw] = field(default_factory=list)  # select: values or {"label", "value"}
    columns: list[str] | None = None  # table: column order (default: the keys of the rows)
    on: dict[str, Handler] = field(default_factory=dict)  # "click", "submit", "change"
    binding: Binding | None = None


class ViewDefinition(Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    title: str = ""
    description: str = ""
    components: list[Component]


class ViewEntry(Struct, kw_only=True):
    """The read model of one view (``view.{app}.{view}``), served by the gateway."""

    app_id: str
    view_id: str
    definition: ViewDefinition  # worklet references resolved to ids
    updated_at: datetime


# ---------------------------------------------------------------- runs


class RunRequest(Struct, kw_only=True):
    """One run to execute, on stream RUNS; ``Nats-Msg-Id`` is the run id."""

    run_id: str
    app_id: str
    worklet_id: str
    version: int
    trigger: Trigger
    input: Raw = NULL
    timeout: float  # seconds of execution before the run is TIMED_OUT
    background: bool = False
    trace: bool = False  # the caller wants the per-block trace in its answer
    queued_at: datetime
    reply_to: str | None = None  # core subject for the terminal event (synchronous callers)
    parent_run_id: str | None = None
    depth: int = 0
    schedule_id: str | None = None


class RunError(Struct, kw_only=True, omit_defaults=True):
    type: str  # the exception class for user code, or a platform error type below
    message: str
    block: str | None = None
    traceback: str | None = None


class BlockTrace(Struct, kw_only=True, omit_defaults=True):
    block: str
    type: str
    input: Raw = NULL
    output: Raw = NULL
    logs: list[str] = field(default_factory=list)
    duration_ms: float = 0.0
    started_at: datetime | None = None
    next: str | None = None
    error: RunError | None = None
    child_run_id: str | None = None  # worklet blocks


class _Event(Struct, kw_only=True, tag_field="kind"):
    run_id: str
    app_id: str
    worklet_id: str
    version: int
    trigger: Trigger
    at: datetime
    parent_run_id: str | None = None
    schedule_id: str | None = None


class RunQueued(_Event, tag="queued"):
    input: Raw = NULL
    background: bool = False
    timeout: float = 0.0


class RunStarted(_Event, tag="started"):
    attempt: int = 1
    executor: str = ""


class BlockFinished(_Event, tag="block_finished"):
    block: BlockTrace


class RunSucceeded(_Event, tag="succeeded"):
    output: Raw = NULL
    latency_ms: int = 0
    trace: list[BlockTrace] = field(default_factory=list)


class RunFailed(_Event, tag="failed"):
    error: RunError
    latency_ms: int = 0
    trace: list[BlockTrace] = field(default_factory=list)


class RunTimedOut(_Event, tag="timed_out"):
    error: RunError
    latency_ms: int = 0
    trace: list[BlockTrace] = field(default_factory=list)


class RunCancelled(_Event, tag="cancelled"):
    error: RunError
    latency_ms: int = 0
    trace: list[BlockTrace] = field(default_factory=list)


RunEvent = (
    RunQueued | RunStarted | BlockFinished | RunSucceeded | RunFailed | RunTimedOut | RunCancelled
)
TerminalEvent = RunSucceeded | RunFailed | RunTimedOut | RunCancelled

EVENT_STATUS: dict[type[_Event], Status] = {
    RunQueued: Status.QUEUED,
    RunStarted: Status.RUNNING,
    BlockFinished: Status.RUNNING,
    RunSucceeded: Status.SUCCEEDED,
    RunFailed: Status.FAILED,
    RunTimedOut: Status.TIMED_OUT,
    RunCancelled: Status.CANCELLED,
}


def status_of(event: RunEvent) -> Status:
    return EVENT_STATUS[type(event)]


# ---------------------------------------------------------------- internal request/reply


class RunLookup(Struct, kw_only=True):
    app_id: str
    worklet_id: str
    run_id: str


class RunState(Struct, kw_only=True, omit_defaults=True):
    """What a poll needs; the registry's answer to a RunLookup."""

    run_id: str
    app_id: str
    worklet_id: str
    status: Status
    output: Raw = NULL
    error: RunError | None = None
    latency_ms: int | None = None


class ChangeNotice(Struct, kw_only=True):
    """Broadcast on ``{p}.changes.{app}`` after the registry stored a change."""

    app_id: str
    kind: Literal["application", "key", "worklet", "secret", "schedule", "view"]
    id: str
    action: Literal["put", "delete"]


# ---------------------------------------------------------------- codecs

event_decoder = msgspec.json.Decoder(RunEvent)
run_request_decoder = msgspec.json.Decoder(RunRequest)
encoder = msgspec.json.Encoder()
