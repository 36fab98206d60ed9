"""Turning an invoke into a run: publish it, then answer at once (background) or wait for it.

The order is the contract of docs/internals.md: on one connection, the ``RunQueued`` event
(``Nats-Msg-Id: {run}.queued``) and then the ``RunRequest`` (``Nats-Msg-Id: {run}``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import nats.errors
from nats.aio.client import Client
from nats.js.api import PubAck

from services.common.ids import new_run_id
from services.gateway.body import InvokeBody
from services.gateway.errors import GatewayError
from services.gateway.results import Results
from shared.errors import ErrorCode
from shared.schemas import (
    RunCancelled,
    RunFailed,
    RunQueued,
    RunRequest,
    RunSucceeded,
    RunTimedOut,
    Trigger,
    WorkletHead,
    encoder,
)
from shared.settings import GatewaySettings
from shared.subjects import MSG_ID

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 5.0  # seconds to wait for a JetStream ack

Finished = RunSucceeded | RunFailed | RunCancelled  # how a synchronous run can end with a 200


@contextmanager
def nats_unavailable(what: str, run_id: str | None = None) -> Iterator[None]:
    """NATS errors and timeouts on the way in become a 503."""
    try:
        yield
    except (nats.errors.Error, TimeoutError) as err:
        log.warning("run %s: %s failed: %r", run_id, what, err)
        raise GatewayError(
            ErrorCode.UNAVAILABLE, "The run queue is unavailable; try again shortly"
        ) from None


def _retrieve(future: asyncio.Future[PubAck]) -> None:
    """Mark an ack's failure as seen: it is reported (or moot) through the run request's."""
    if not future.cancelled():
        future.exception()


class Invoker:
    def __init__(self, nc: Client, settings: GatewaySettings, results: Results) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._names = settings.names
        self._settings = settings
        self._results = results

    def _run(
        self, head: WorkletHead, body: InvokeBody, background: bool
    ) -> tuple[RunQueued, RunRequest]:
        run_id = new_run_id()
        now = datetime.now(UTC)
        trigger: Trigger
        if background:
            trigger = "api_async"
            timeout = head.settings.background_timeout
            if timeout is None:
                timeout = self._settings.background_timeout
        else:
            trigger = "api"
            timeout = head.settings.timeout
            if timeout is None:
                timeout = self._settings.default_timeout
        queued = RunQueued(
            run_id=run_id,
            app_id=head.app_id,
            worklet_id=head.worklet_id,
            version=head.version,
            trigger=trigger,
            at=now,
            input=body.worklet_input,
            background=background,
            timeout=timeout,
        )
        request = RunRequest(
            run_id=run_id,
            app_id=head.app_id,
            worklet_id=head.worklet_id,
            version=head.version,
            trigger=trigger,
            input=body.worklet_input,
            timeout=timeout,
            background=background,
            trace=body.trace,
            queued_at=now,
            reply_to=None if background else self._results.subject,
        )
        return queued, request

    def _subjects(self, request: RunRequest) -> tuple[str, str]:
        events = self._names.events(request.app_id, request.worklet_id, request.run_id)
        return events, self._names.runs(request.app_id, request.worklet_id)

    def _check_connected(self) -> None:
        if not self._nc.is_connected:
            raise GatewayError(ErrorCode.UNAVAILABLE, "Not connected to NATS; try again shortly")

    async def background(self, head: WorkletHead, body: InvokeBody) -> str:
        """Publish a background run; returns its id once both JetStream acks are in."""
        self._check_connected()
        queued, request = self._run(head, body, background=True)
        run_id = request.run_id
        events, runs = self._subjects(request)
        with nats_unavailable("publishing a background run", run_id):
            queued_ack = await self._js.publish_async(
                events, encoder.encode(queued), headers={MSG_ID: f"{run_id}.queued"}
            )
            queued_ack.add_done_callback(_retrieve)
            try:
                await self._js.publish(
                    runs, encoder.encode(request), PUBLISH_TIMEOUT, headers={MSG_ID: run_id}
                )
                async with asyncio.timeout(PUBLISH_TIMEOUT):
                    await queued_ack
            finally:
                queued_ack.cancel()  # if the run request failed first, stop waiting for it
        log.debug("run %s: queued in the background on %s", run_id, runs)
        return run_id

    async def synchronous(self, head: WorkletHead, body: InvokeBody) -> Finished:
        """Publish a run and wait for its end; 504 with the run id when it or the wait times out."""
        self._check_connected()
        queued, request = self._run(head, body, background=False)
        run_id = request.run_id
        events, runs = self._subjects(request)
        result = self._results.expect(run_id)
        try:
            with nats_unavailable("publishing a run", run_id):
                # No ack wanted for the queued event: the same connection delivers it first.
                await self._nc.publish(
                    events, encoder.encode(queued), headers={MSG_ID: f"{run_id}.queued"}
                )
                await self._js.publish(
                    runs, encoder.encode(request), PUBLISH_TIMEOUT, headers={MSG_ID: run_id}
                )
            wait = request.timeout + self._settings.sync_wait_margin
            try:
                async with asyncio.timeout(wait):
                    event = await result
            except TimeoutError:
                log.info("run %s: no result within %.1f s", run_id, wait)
                raise GatewayError(
                    ErrorCode.TIMEOUT,
                    f"The worklet did not finish within {request.timeout:g} s; "
                    "poll the run for its result",
                    run_id=run_id,
                ) from None
        finally:
            self._results.forget(run_id)
        if isinstance(event, RunTimedOut):
            raise GatewayError(
                ErrorCode.TIMEOUT, f"Worklet timed out: {event.error.message}", run_id=run_id
            )
        return event
