"""Turning an invoke into a run: publish it, then answer at once (background) or wait for it.

The order is the contract of docs/internals.md: on one connection, the ``RunQueued`` event
(``Nats-Msg-Id: {run}.queued``) and then the ``RunRequest`` (``Nats-Msg-Id: {run}``). Both go
out in one write (``Wire``), in that order; a background invoke then awaits both JetStream acks
together, a synchronous one the run request's (the queued event, ahead of it on the same
connection, is in the EVENTS stream's queue before the run can even be delivered).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import nats.errors
from nats.aio.client import Client

from services.common.ids import new_run_id
from services.common.wire import Wire, header_block, hpub, within
from services.gateway.answers import Cancelled, Failed, Succeeded, TimedOut
from services.gateway.body import InvokeBody
from services.gateway.errors import GatewayError
from services.gateway.results import Results
from shared.errors import ErrorCode
from shared.schemas import RunQueued, RunRequest, Trigger, WorkletHead, encoder
from shared.settings import GatewaySettings
from shared.subjects import EVENT_KIND_HEADER, MSG_ID

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 5.0  # seconds to wait for a JetStream ack

Finished = Succeeded | Failed | Cancelled  # how a synchronous run can end with a 200


def _unavailable(what: str, run_id: str, err: BaseException) -> GatewayError:
    """NATS errors and timeouts on the way in become a 503."""
    log.warning("run %s: %s failed: %r", run_id, what, err)
    return GatewayError(ErrorCode.UNAVAILABLE, "The run queue is unavailable; try again shortly")


class Invoker:
    def __init__(self, nc: Client, wire: Wire, settings: GatewaySettings, results: Results) -> None:
        self._nc = nc
        self._wire = wire
        self._names = settings.names
        self._settings = settings
        self._results = results

    def _run(
        self, head: WorkletHead, body: InvokeBody, background: bool
    ) -> tuple[RunQueued, RunRequest]:
        run_id = new_run_id()
        now = datetime.now(UTC)
        trigger: Trigger = "api_async" if background else "api"
        timeout = self._settings.run_timeout(head.settings, background)
        if body.view_id is not None:  # invoked by a view's handler or binding
            trigger = "view"
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

    def _commands(
        self, queued: RunQueued, request: RunRequest, queued_ack: bytes, run_ack: bytes
    ) -> tuple[bytes, bytes]:
        """The queued event and the run request, as commands (``*_ack``: reply subjects)."""
        run_id = request.run_id
        events = self._names.events(request.app_id, request.worklet_id, run_id)
        runs = self._names.runs(request.app_id, request.worklet_id)
        queued_payload, request_payload = encoder.encode(queued), encoder.encode(request)
        self._wire.check_size(queued_payload)
        self._wire.check_size(request_payload)
        return (
            hpub(
                events.encode(),
                header_block((MSG_ID, f"{run_id}.queued"), (EVENT_KIND_HEADER, "queued")),
                queued_payload,
                queued_ack,
            ),
            hpub(runs.encode(), header_block((MSG_ID, run_id)), request_payload, run_ack),
        )

    def _check_connected(self) -> None:
        if not self._nc.is_connected:
            raise GatewayError(ErrorCode.UNAVAILABLE, "Not connected to NATS; try again shortly")

    async def background(self, head: WorkletHead, body: InvokeBody) -> str:
        """Publish a background run; returns its id once both JetStream acks are in."""
        self._check_connected()
        queued, request = self._run(head, body, background=True)
        run_id = request.run_id
        wire = self._wire
        queued_reply, queued_ack = wire.expect_ack()
        run_reply, run_ack = wire.expect_ack()
        try:
            wire.send(*self._commands(queued, request, queued_reply, run_reply))
            await within(PUBLISH_TIMEOUT, run_ack, queued_ack)
        except (nats.errors.Error, TimeoutError) as err:
            raise _unavailable("publishing a background run", run_id, err) from None
        finally:
            wire.forget(run_reply, run_ack)
            wire.forget(queued_reply, queued_ack)
        log.debug("run %s: queued in the background", run_id)
        return run_id

    async def synchronous(self, head: WorkletHead, body: InvokeBody) -> Finished:
        """Publish a run and wait for its end; 504 with the run id when it or the wait times out."""
        self._check_connected()
        queued, request = self._run(head, body, background=False)
        run_id = request.run_id
        wire = self._wire
        result = self._results.expect(run_id)
        try:
            # No ack wanted for the queued event: the same connection delivers it first.
            run_reply, run_ack = wire.expect_ack()
            try:
                wire.send(*self._commands(queued, request, b"", run_reply))
                await within(PUBLISH_TIMEOUT, run_ack)
            except (nats.errors.Error, TimeoutError) as err:
                raise _unavailable("publishing a run", run_id, err) from None
            finally:
                wire.forget(run_reply, run_ack)
            wait = request.timeout + self._settings.sync_wait_margin
            try:
                await within(wait, result)
                event = result.result()
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
        if isinstance(event, TimedOut):
            raise GatewayError(
                ErrorCode.TIMEOUT, f"Worklet timed out: {event.error.message}", run_id=run_id
            )
        return event
