"""Runs, as recorded from the EVENTS stream: a paged list (newest first) and one run's detail."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pymongo import DESCENDING

from services.registry import records
from services.registry.auth import ApplicationDep
from services.registry.bodies import RunDetail, RunPage, reply
from services.registry.context import RegistryDep
from services.registry.errors import NotFound
from services.registry.openapi import doc
from services.registry.store import Document
from shared.schemas import Status

router = APIRouter(prefix="/v1/applications/{app_id}/runs", tags=["runs"])


@router.get("", openapi_extra=doc(answer=RunPage))
async def list_runs(
    app: ApplicationDep,
    registry: RegistryDep,
    worklet_id: Annotated[str | None, Query(description="only runs of this worklet")] = None,
    status: Annotated[Status | None, Query(description="only runs in this status")] = None,
    schedule_id: Annotated[
        str | None, Query(description="only runs of this schedule (skipped slots included)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(description="`next_cursor` of the previous page: the last run id")
    ] = None,
) -> Response:
    """The application's runs, newest first (run ids sort by creation time)."""
    query: Document = {"app_id": app["_id"]}
    if worklet_id:
        query["worklet_id"] = worklet_id
    if status is not None:
        query["status"] = status.value
    if schedule_id:
        query["schedule_id"] = schedule_id
    if cursor:
        query["run_id"] = {"$lt": cursor}
    found = registry.store.runs.find(query, records.SUMMARY_FIELDS)
    docs = [d async for d in found.sort("run_id", DESCENDING).limit(limit + 1)]
    more = len(docs) > limit
    items = [records.summary(d) for d in docs[:limit]]
    return reply(RunPage(items=items, next_cursor=items[-1].run_id if more else None))


@router.get("/{run_id}", openapi_extra=doc(answer=RunDetail))
async def get_run(run_id: str, app: ApplicationDep, registry: RegistryDep) -> Response:
    """One run with its input, output, error, attempts and per-block trace."""
    found = await registry.store.runs.find_one({"_id": run_id, "app_id": app["_id"]})
    if found is None:
        raise NotFound(f"no run {run_id!r} in this application")
    return reply(records.detail(found))
