"""The JSON the gateway answers with, as msgspec Structs encoded straight into bytes."""

from __future__ import annotations

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from shared.schemas import (
    NULL,
    RunCancelled,
    RunError,
    RunEvent,
    RunFailed,
    RunState,
    RunSucceeded,
    RunTimedOut,
    Status,
    status_of,
)

JSON = "application/json"
_encoder = msgspec.json.Encoder()
encode = _encoder.encode


# ------------------------------------------------------------------------- errors


class PublicErrorDetail(Struct, kw_only=True):
    code: str
    message: str


class ErrorAnswer(Struct, kw_only=True):
    success: bool = False
    error: PublicErrorDetail
    run_id: str | UnsetType = UNSET  # a 504 carries the run id, which can still be polled


class RunErrorAnswer(Struct, kw_only=True):
    """What a client sees of a run's error: never the traceback of the platform's code."""

    type: str
    message: str
    block: str | None = None


def _run_error(error: RunError) -> RunErrorAnswer:
    return RunErrorAnswer(type=error.type, message=error.message, block=error.block)


class TraceAnswer(Struct, kw_only=True):
    """A ``BlockTrace`` as a client sees it (every field written, no traceback, no start time).

    The defaults are BlockTrace's, so the stored JSON of a trace decodes straight into these.
    """

    block: str
    type: str
    input: Raw = NULL
    output: Raw = NULL
    logs: list[str] = msgspec.field(default_factory=list)
    duration_ms: float = 0.0
    next: str | None = None
    error: RunErrorAnswer | None = None
    child_run_id: str | None = None


_trace_decoder = msgspec.json.Decoder(list[TraceAnswer] | None)


def _trace(trace: Raw) -> list[TraceAnswer]:
    return _trace_decoder.decode(trace) or []


# ------------------------------------------------------------------------- results


class _Ended(Struct, kw_only=True, tag_field="kind"):
    """What a synchronous answer needs of a terminal event (``shared.schemas``), and no more:
    the trace stays JSON text unless the caller asked for it."""

    run_id: str
    latency_ms: int = 0
    trace: Raw = NULL


class Succeeded(_Ended, tag="succeeded"):
    output: Raw = NULL


class Failed(_Ended, tag="failed"):
    error: RunError


class TimedOut(_Ended, tag="timed_out"):
    error: RunError


class Cancelled(_Ended, tag="cancelled"):
    error: RunError


Ended = Succeeded | Failed | TimedOut | Cancelled
ended_decoder = msgspec.json.Decoder(Ended)


# ------------------------------------------------------------------------- invoke


class SucceededAnswer(Struct, kw_only=True):
    success: bool = True
    worklet_output: Raw
    latency_ms: int
    run_id: str
    trace: list[TraceAnswer] | UnsetType = UNSET


class FailedAnswer(Struct, kw_only=True):
    success: bool = False
    error: RunErrorAnswer
    run_id: str
    latency_ms: int
    trace: list[TraceAnswer] | UnsetType = UNSET


class Scheduled(Struct, kw_only=True):
    success: bool = True
    scheduled_worklet_run_id: str
    message: str = "Worklet scheduled for background execution"


def run_answer(event: Succeeded | Failed | Cancelled, trace: bool) -> Struct:
    """The 200 answer to a synchronous invoke that ended (a timed-out run is a 504)."""
    steps = _trace(event.trace) if trace else UNSET
    if isinstance(event, Succeeded):
        return SucceededAnswer(
            worklet_output=event.output,
            latency_ms=event.latency_ms,
            run_id=event.run_id,
            trace=steps,
        )
    # Failed and Cancelled: the run ended without an output
    return FailedAnswer(
        error=_run_error(event.error),
        run_id=event.run_id,
        latency_ms=event.latency_ms,
        trace=steps,
    )


# ------------------------------------------------------------------------- poll


class PollAnswer(Struct, kw_only=True):
    run_id: str
    status: Status
    message: str
    worklet_output: Raw = NULL
    latency_ms: int | None = None
    error: RunErrorAnswer | UnsetType = UNSET


def _message(status: Status, error: RunError | None) -> str:
    detail = error.message if error is not None else "unknown error"
    match status:
        case Status.QUEUED:
            return "Worklet is queued"
        case Status.RUNNING:
            return "Worklet is running"
        case Status.SUCCEEDED:
            return "Worklet has finished executing successfully"
        case Status.FAILED:
            return f"Worklet failed: {detail}"
        case Status.TIMED_OUT:
            return f"Worklet timed out: {detail}"
        case Status.CANCELLED:
            return "Worklet run was cancelled"


def _poll_answer(
    run_id: str, status: Status, output: Raw, error: RunError | None, latency_ms: int | None
) -> PollAnswer:
    answer = PollAnswer(
        run_id=run_id,
        status=status,
        message=_message(status, error),
        worklet_output=output if status is Status.SUCCEEDED else NULL,
        latency_ms=latency_ms,
    )
    if status in (Status.FAILED, Status.TIMED_OUT, Status.CANCELLED):
        answer.error = (
            _run_error(error)
            if error is not None
            else RunErrorAnswer(type="Unknown", message="unknown error")
        )
    return answer


def poll_from_event(event: RunEvent) -> PollAnswer:
    status = status_of(event)
    match event:
        case RunSucceeded():
            return _poll_answer(event.run_id, status, event.output, None, event.latency_ms)
        case RunFailed() | RunTimedOut() | RunCancelled():
            return _poll_answer(event.run_id, status, NULL, event.error, event.latency_ms)
        case _:
            return _poll_answer(event.run_id, status, NULL, None, None)


def poll_from_state(state: RunState) -> PollAnswer:
    return _poll_answer(state.run_id, state.status, state.output, state.error, state.latency_ms)
