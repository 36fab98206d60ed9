"""Run records: the MongoDB document of a run (written by ``persist.py``) and what is read
from it: the API's summary and detail, and the ``RunState`` answered to ``runs.get``."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Raw

from services.registry.bodies import LastRun, RunDetail, RunSummary
from services.registry.store import Document, maybe_stamp
from shared.errors import RunErrorType
from shared.schemas import NULL, RunError, RunState, Status

# Fields of a summary: everything but the (possibly large) JSON texts.
SUMMARY_FIELDS = {"input": 0, "output": 0, "error": 0, "trace": 0}

# A slot the scheduler skipped (overlap "skip") is recorded as a CANCELLED run whose error
# (a RunError as JSON text, no spaces: ``{"type":"OverlapSkipped",...}``) has this type
# (inside a JSON string, quotes are \").
SKIPPED_ERROR_PATTERN = f'"type":"{RunErrorType.OVERLAP_SKIPPED}"'

_error_decoder = msgspec.json.Decoder(RunError)


def _raw(text: Any, default: Raw = NULL) -> Raw:
    return Raw(text.encode()) if isinstance(text, str) and text else default


def _status(doc: Document) -> Status:
    # A record created from a batch's facts only has no status yet: its run was queued.
    return Status(doc["status"]) if doc.get("status") else Status.QUEUED


def summary(doc: Document) -> RunSummary:
    return RunSummary(
        run_id=doc["_id"],
        worklet_id=doc["worklet_id"],
        version=doc["version"],
        trigger=doc["trigger"],
        status=_status(doc),
        latency_ms=doc.get("latency_ms"),
        parent_run_id=doc.get("parent_run_id"),
        schedule_id=doc.get("schedule_id"),
        queued_at=maybe_stamp(doc.get("queued_at")),
        started_at=maybe_stamp(doc.get("started_at")),
        finished_at=maybe_stamp(doc.get("finished_at")),
    )


def last_run(doc: Document) -> LastRun:
    return LastRun(
        run_id=doc["_id"], status=_status(doc), queued_at=maybe_stamp(doc.get("queued_at"))
    )


def detail(doc: Document) -> RunDetail:
    return RunDetail(
        **msgspec.structs.asdict(summary(doc)),
        input=_raw(doc.get("input")),
        worklet_output=_raw(doc.get("output")),
        error=_raw(doc.get("error")),
        attempts=doc.get("attempts") or 0,
        trace=_raw(doc.get("trace"), Raw(b"[]")),
    )


def state(doc: Document) -> RunState:
    error = doc.get("error")
    return RunState(
        run_id=doc["_id"],
        app_id=doc["app_id"],
        worklet_id=doc["worklet_id"],
        status=_status(doc),
        output=_raw(doc.get("output")),
        error=_error_decoder.decode(error) if error else None,
        latency_ms=doc.get("latency_ms"),
    )
