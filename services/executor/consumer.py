"""Pulling run requests from RUNS and settling each message explicitly.

One pull request at a time asks for as many messages as there are free slots; see ``Consumer``.
Acknowledgements, by name: a finished run (any terminal status, stored) → ``ack``; a failure of
NATS before the run started or while storing its end → ``nak(delay)``; a message that does not
decode → ``term``; a run cut short by shutdown → ``nak`` (redelivered at once, never lost). A
run already storing its end when the shutdown grace runs out is waited for, not cut short.
While runs work, one ticker sends ``in_progress`` for every message in flight every
``ack_wait / 3``.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import DEFAULT_PREFIX as JS_API
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.common.wire import STATUS, Wire, pub
from services.executor.runtime import Runtime, shielded
from shared.schemas import RunRequest, TerminalEvent, event_decoder, run_request_decoder
from shared.settings import ExecutorSettings
from shared.subjects import EXECUTORS_CONSUMER

log = logging.getLogger(__name__)

PULL_EXPIRES = 1.0  # seconds a pull request lingers on the server
PULL_EXPIRES_NS = int(PULL_EXPIRES * 1e9)
PULL_GRACE = 1.0  # seconds past its expiry after which a silent pull request counts as over
NAK_DELAY = 2.0  # seconds before a run that could not start is redelivered
RETRY_DELAY = 1.0  # seconds between pull attempts after a JetStream error
MIN_ACK_PENDING = 10_000  # the same on every executor, whatever its concurrency

# Errors of the connection or of JetStream: logged and retried, never fatal to the loop.
TRANSPORT_ERRORS = (nats.errors.Error, TimeoutError, OSError)


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
    """Keeps one pull request open on the durable consumer while it has room for runs.

    A pull request asks for as many messages as there are free slots (``concurrency`` minus the
    runs in flight) and lingers ``PULL_EXPIRES`` on the server; its messages arrive on this
    executor's inbox as they come. It is over once that many arrived, or when the server says
    so (408 expired, 409 or 503 refused), or ``PULL_GRACE`` after its expiry if the server said
    nothing (a reconnect). The next one is sent when at least ``concurrency / 4`` slots are free
    (``RETRY_DELAY`` later if the last one was refused), so a saturated executor asks once per
    quarter of its slots, not once per run.
    """

    def __init__(
        self, nc: Client, settings: ExecutorSettings, runtime: Runtime, wire: Wire
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._settings = settings
        self._runtime = runtime
        self._wire = wire
        self._inflight: dict[asyncio.Task[None], Msg] = {}
        self._finishing: set[asyncio.Task[None]] = set()  # storing their end: never cancelled
        self._stopping = False
        self._stopped = asyncio.Event()
        self._sub: Subscription | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._inbox = b""
        self._next = b""  # the consumer's "next messages" API subject
        self._threshold = max(1, settings.concurrency // 4)
        self._pull_left = 0  # messages the open pull request may still deliver; 0: none open
        self._pull_timer: asyncio.TimerHandle | None = None
        self._retry: asyncio.TimerHandle | None = None

    def stop(self) -> None:
        """Stop fetching; ``serve`` then finishes the runs in flight and returns."""
        self._stopping = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._stopped.set()

    async def start(self) -> None:
        """Declare the consumer and subscribe its inbox; in-progress acks start ticking."""
        await ensure_consumer(self._js, self._settings)
        names = self._settings.names
        self._next = f"{JS_API}.CONSUMER.MSG.NEXT.{names.runs_stream}.{EXECUTORS_CONSUMER}".encode()
        inbox = self._nc.new_inbox()
        self._inbox = inbox.encode()
        self._sub = await self._nc.subscribe(inbox, cb=self._on_msg)
        self._ticker = asyncio.create_task(self._heartbeats(), name="in-progress ticker")
        log.info(
            "consuming %s (concurrency %d, ack wait %gs)",
            names.runs_stream,
            self._settings.concurrency,
            self._settings.ack_wait,
        )
        self._maybe_pull()

    async def serve(self) -> None:
        """Run what arrives until ``stop``; then finish or nak the runs in flight."""
        assert self._sub is not None and self._ticker is not None, "start() first"
        try:
            await self._stopped.wait()
        finally:
            self._stopping = True
            self._pull_over()
            # Draining the inbox makes the server drop the open pull request (it has no
            # interest any more), and what it sent before is nak'ed as it arrives: so nothing
            # nak'ed from here on can come back to this executor.
            try:
                await self._sub.drain()
            except TRANSPORT_ERRORS as err:
                log.debug("draining the inbox: %s", err)
            await self._wind_down()
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)

    # ------------------------------------------------------------ fetching

    def _maybe_pull(self) -> None:
        """Open a pull request for the free slots, unless one is open or too few are free."""
        if self._stopping or self._pull_left or self._retry is not None:
            return
        free = self._settings.concurrency - len(self._inflight)
        if free < self._threshold:
            return
        request = b'{"batch":%d,"expires":%d}' % (free, PULL_EXPIRES_NS)
        try:
            self._wire.send(pub(self._next, request, self._inbox))
        except nats.errors.ConnectionClosedError:
            log.warning("connection closed, no more fetching")
            self.stop()
            return
        except TRANSPORT_ERRORS as err:
            log.warning("asking for run requests failed: %s", err)
            self._retry_later()
            return
        self._pull_left = free
        loop = asyncio.get_running_loop()
        self._pull_timer = loop.call_later(PULL_EXPIRES + PULL_GRACE, self._pull_lapsed)

    def _pull_over(self) -> None:
        self._pull_left = 0
        if self._pull_timer is not None:
            self._pull_timer.cancel()
            self._pull_timer = None

    def _pull_lapsed(self) -> None:
        """No word from the server past the request's expiry (a reconnect lost it)."""
        self._pull_timer = None
        if self._pull_left:
            log.debug("pull request lapsed with %d messages left", self._pull_left)
            self._pull_over()
            self._maybe_pull()

    def _retry_later(self) -> None:
        self._retry = asyncio.get_running_loop().call_later(RETRY_DELAY, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        self._maybe_pull()

    def _on_status(self, msg: Msg) -> None:
        """The server about the open pull request: expired (408) or refused (409, 503...)."""
        headers = msg.headers or {}
        status = headers.get(STATUS)
        if status == "100" or not self._pull_left:  # a heartbeat, or about an old request
            return
        self._pull_over()
        if status == "408":
            self._maybe_pull()
        else:
            log.warning(
                "pull request ended by the server: %s %s", status, headers.get("Description", "")
            )
            self._retry_later()

    async def _on_msg(self, msg: Msg) -> None:
        if not msg.reply:  # no ack subject: a status about the pull request, not a run
            self._on_status(msg)
            return
        if self._pull_left:
            self._pull_left -= 1
            if not self._pull_left:
                self._pull_over()
        if self._stopping:
            await self._nak(msg, None, "shutting down", delay=None)
            return
        task = asyncio.create_task(self._handle(msg))
        self._inflight[task] = msg
        task.add_done_callback(self._done)
        if not self._pull_left:
            self._maybe_pull()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        self._finishing.discard(task)
        if not task.cancelled() and (err := task.exception()) is not None:
            log.error("run task failed: %r", err, exc_info=err)
        self._maybe_pull()

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
        """Give the runs in flight ``shutdown_grace`` seconds, then cut them short (nak).

        A run already storing its end is not cut short: it is waited for.
        """
        if not self._inflight:
            return
        log.info(
            "waiting up to %gs for %d runs", self._settings.shutdown_grace, len(self._inflight)
        )
        tasks = list(self._inflight)
        _, pending = await asyncio.wait(tasks, timeout=self._settings.shutdown_grace)
        cut = [task for task in pending if task not in self._finishing]
        for task in cut:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if cut:
            log.warning("%d runs were cut short by shutdown and will be redelivered", len(cut))

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
        task = asyncio.current_task()
        if task is not None:  # from here on, a shutdown waits for the end to be stored
            self._finishing.add(task)
        await self._runtime.finish(run, event)

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
        if not isinstance(event, TerminalEvent):
            return False
        self._runtime.resend(request, event, last.data)
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
