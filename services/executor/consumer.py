"""Pulling run requests from RUNS and settling each message explicitly.

Acknowledgements, by name: a finished run (any terminal status, stored) → ``ack``; a failure of
NATS before the run started or while storing its end → ``nak(delay)``; a message that does not
decode → ``term``; a run cut short by shutdown → ``nak`` (redelivered at once, never lost). While runs work, one ticker
sends ``in_progress`` for every message in flight every ``ack_wait / 3``.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.executor.runtime import Runtime, shielded
from shared.schemas import (
    RunCancelled,
    RunFailed,
    RunRequest,
    RunSucceeded,
    RunTimedOut,
    event_decoder,
    run_request_decoder,
)
from shared.settings import ExecutorSettings
from shared.subjects import EXECUTORS_CONSUMER

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 1.0  # seconds one pull request waits; bounds how long a stop waits on it
NAK_DELAY = 2.0  # seconds before a run that could not start is redelivered
RETRY_DELAY = 1.0  # seconds between pull attempts after a JetStream error
MIN_ACK_PENDING = 10_000  # the same on every executor, whatever its concurrency

# Errors of the connection or of JetStream: logged and retried, never fatal to the loop.
TRANSPORT_ERRORS = (nats.errors.Error, TimeoutError, OSError)
TERMINAL_EVENTS = (RunSucceeded, RunFailed, RunTimedOut, RunCancelled)


def consumer_config(settings: ExecutorSettings) -> ConsumerConfig:
    return ConsumerConfig(
        name=EXECUTORS_CONSUMER,
        durable_name=EXECUTORS_CONSUMER,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait,
        max_deliver=-1,  # the executor itself fails a run delivered too often
        max_ack_pending=max(MIN_ACK_PENDING, settings.concurrency),
        filter_subject=settings.names.runs_all,
    )


async def ensure_consumer(js: JetStreamContext, settings: ExecutorSettings) -> None:
    """Create the durable consumer, or bring an existing one to this configuration."""
    stream, wanted = settings.names.runs_stream, consumer_config(settings)
    try:
        info = await js.consumer_info(stream, EXECUTORS_CONSUMER)
    except nats.js.errors.NotFoundError:
        await js.add_consumer(stream, wanted)
        log.info("created consumer %s on %s", EXECUTORS_CONSUMER, stream)
        return
    have = info.config
    if (
        have.ack_wait != wanted.ack_wait
        or have.max_deliver != wanted.max_deliver
        or (have.max_ack_pending or 0) < settings.concurrency
        or have.filter_subject != wanted.filter_subject
    ):
        await js.add_consumer(stream, wanted)  # same name: the server updates it
        log.info("updated consumer %s on %s", EXECUTORS_CONSUMER, stream)


class Consumer:
    def __init__(self, js: JetStreamContext, settings: ExecutorSettings, runtime: Runtime) -> None:
        self._js = js
        self._settings = settings
        self._runtime = runtime
        self._inflight: dict[asyncio.Task[None], Msg] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._sub: JetStreamContext.PullSubscription | None = None
        self._ticker: asyncio.Task[None] | None = None

    def stop(self) -> None:
        """Stop fetching; ``serve`` then finishes the runs in flight and returns."""
        self._stopping = True
        self._wake.set()

    async def start(self) -> None:
        """Declare the consumer and bind to it; in-progress acks start ticking."""
        await ensure_consumer(self._js, self._settings)
        names = self._settings.names
        self._sub = await self._js.pull_subscribe_bind(
            durable=EXECUTORS_CONSUMER, stream=names.runs_stream
        )
        self._ticker = asyncio.create_task(self._heartbeats(), name="in-progress ticker")
        log.info(
            "consuming %s (concurrency %d, ack wait %gs)",
            names.runs_stream,
            self._settings.concurrency,
            self._settings.ack_wait,
        )

    async def serve(self) -> None:
        """Fetch and run until ``stop``; then finish or nak the runs in flight."""
        assert self._sub is not None and self._ticker is not None, "start() first"
        try:
            await self._fetch_loop(self._sub)
        finally:
            await self._wind_down()
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            try:
                await self._sub.unsubscribe()
            except TRANSPORT_ERRORS as err:
                log.debug("unsubscribing: %s", err)

    # ------------------------------------------------------------ fetching

    async def _fetch_loop(self, sub: JetStreamContext.PullSubscription) -> None:
        while not self._stopping:
            if len(self._inflight) >= self._settings.concurrency:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                # One message per pull: a lingering pull returns the moment a run arrives.
                msgs = await sub.fetch(1, timeout=FETCH_TIMEOUT)
            except TimeoutError:  # nothing to do (nats' own TimeoutError included)
                continue
            except nats.errors.ConnectionClosedError:
                log.warning("connection closed, no more fetching")
                return
            except TRANSPORT_ERRORS as err:
                log.warning("fetching run requests failed: %s", err)
                await asyncio.sleep(RETRY_DELAY)
                continue
            for msg in msgs:
                if self._stopping:
                    await self._nak(msg, None, "shutting down", delay=None)
                else:
                    task = asyncio.create_task(self._handle(msg))
                    self._inflight[task] = msg
                    task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        self._wake.set()
        if not task.cancelled() and (err := task.exception()) is not None:
            log.error("run task failed: %r", err, exc_info=err)

    async def _heartbeats(self) -> None:
        interval = self._settings.ack_wait / 3
        while True:
            await asyncio.sleep(interval)
            for msg in list(self._inflight.values()):
                try:
                    await msg.in_progress()
                except TRANSPORT_ERRORS as err:
                    log.debug("in-progress ack failed: %s", err)

    async def _wind_down(self) -> None:
        """Give the runs in flight ``shutdown_grace`` seconds, then cut them short (nak)."""
        if not self._inflight:
            return
        log.info(
            "waiting up to %gs for %d runs", self._settings.shutdown_grace, len(self._inflight)
        )
        tasks = list(self._inflight)
        _, pending = await asyncio.wait(tasks, timeout=self._settings.shutdown_grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if pending:
            log.warning("%d runs were cut short by shutdown and will be redelivered", len(pending))

    # ------------------------------------------------------------ one message

    async def _handle(self, msg: Msg) -> None:
        try:
            request = run_request_decoder.decode(msg.data)
        except msgspec.DecodeError as err:
            log.error("run request on %s does not decode (%s); terminating it", msg.subject, err)
            await self._term(msg)
            return
        run_id = request.run_id
        attempt = msg.metadata.num_delivered
        try:
            await self._process(request, attempt)
        except asyncio.CancelledError:
            await shielded(self._nak(msg, run_id, "cut short by shutdown", delay=None))
            raise
        except TRANSPORT_ERRORS as err:  # before the run started, or while recording its end
            await self._nak(msg, run_id, f"NATS failed: {err!r}", NAK_DELAY)
        except Exception:
            log.exception("run %s: failed in the executor (attempt %d)", run_id, attempt)
            await self._nak(msg, run_id, "executor failure", NAK_DELAY)
        else:
            await self._ack(msg, run_id)

    async def _process(self, request: RunRequest, attempt: int) -> None:
        """Run the request to its terminal event, which is stored and sent before this returns."""
        if attempt > 1 and await self._already_ended(request):
            log.info("run %s: delivered again (attempt %d), had ended", request.run_id, attempt)
            return
        if attempt > self._settings.max_deliveries:
            run, event = self._runtime.give_up(request, attempt)
        else:
            run = await self._runtime.start(request, attempt)
            event = await self._runtime.execute(run)
        await shielded(self._runtime.finish(run, event))

    async def _already_ended(self, request: RunRequest) -> bool:
        """Whether the run's last event is terminal; if so, the waiting caller gets it again."""
        names = self._settings.names
        subject = names.events(request.app_id, request.worklet_id, request.run_id)
        try:
            last = await self._js.get_last_msg(names.events_stream, subject, direct=True)
        except nats.js.errors.NotFoundError:
            return False
        if last.data is None:
            return False
        try:
            event = event_decoder.decode(last.data)
        except msgspec.DecodeError as err:
            log.warning("run %s: last event does not decode: %s", request.run_id, err)
            return False
        if not isinstance(event, TERMINAL_EVENTS):
            return False
        await self._runtime.resend(request, event, last.data)
        return True

    # ------------------------------------------------------------ acknowledgements

    async def _ack(self, msg: Msg, run_id: str) -> None:
        try:
            await msg.ack()
        except TRANSPORT_ERRORS as err:  # the run is recorded; a redelivery will see it ended
            log.warning("run %s: ack failed: %s", run_id, err)

    async def _nak(self, msg: Msg, run_id: str | None, why: str, delay: float | None) -> None:
        log.warning("run %s: nak (%s)", run_id or msg.subject, why)
        try:
            await msg.nak(delay=delay)
        except TRANSPORT_ERRORS as err:  # redelivered after ack_wait anyway
            log.warning("run %s: nak failed: %s", run_id or msg.subject, err)

    async def _term(self, msg: Msg) -> None:
        try:
            await msg.term()
        except TRANSPORT_ERRORS as err:
            log.warning("term of a message on %s failed: %s", msg.subject, err)
