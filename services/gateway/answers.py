"""The JSON the gateway answers with, as msgspec Structs encoded straight into a Response."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from fastapi import Response
from msgspec import UNSET, Raw, Struct, UnsetType

from shared.schemas import (
    NULL,
    BlockTrace,
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


def json_response(
    answer: Struct, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(_encoder.encode(answer), status, headers, JSON)


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
    block: str
    type: str
    input: Raw
    output: Raw
    logs: list[str]
    duration_ms: float
    next: str | None
    error: RunErrorAnswer | None
    child_run_id: str | None


def _trace(trace: list[BlockTrace]) -> list[TraceAnswer]:
    return [
        TraceAnswer(
            block=t.block,
            type=t.type,
            input=t.input,
            output=t.output,
            logs=t.logs,
            duration_ms=t.duration_ms,
            next=t.next,
            error=_run_error(t.error) if t.error is not None else None,
            child_run_id=t.child_run_id,
        )
        for t in trace
    ]


# ------------------------------------------------------------------------- invoke


class Succeeded(Struct, kw_only=True):
    success: bool = True
    worklet_output: Raw
    latency_ms: int
    run_id: str
    trace: list[TraceAnswer] | UnsetType = UNSET


class Failed(Struct, kw_only=True):
    success: bool = False
    error: RunErrorAnswer
    run_id: str
    latency_ms: int
    trace: list[TraceAnswer] | UnsetType = UNSET


class Scheduled(Struct, kw_only=True):
    success: bool = True
    scheduled_worklet_run_id: str
    message: str = "Worklet scheduled for background execution"


def run_answer(event: RunSucceeded | RunFailed | RunCancelled, trace: bool) -> Struct:
    """The 200 answer to a synchronous invoke that ended (a timed-out run is a 504)."""
    steps = _trace(event.trace) if trace else UNSET
    if isinstance(event, RunSucceeded):
        return Succeeded(
            worklet_output=event.output,
            latency_ms=event.latency_ms,
            run_id=event.run_id,
            trace=steps,
        )
    # RunFailed and RunCancelled: the run ended without an output
    return Failed(
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
