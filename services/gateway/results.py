"""Terminal events for this process's synchronous waits, on one subscription per process."""

from __future__ import annotations

import asyncio
import logging

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.gateway.answers import Ended, ended_decoder
from shared.schemas import event_decoder

log = logging.getLogger(__name__)


class Results:
    """Futures by run id, resolved by the terminal events sent to ``subject``.

    Only what an answer needs is decoded (``answers.Ended``); a trace stays JSON text until an
    answer asks for it.
    """

    def __init__(self, nc: Client, subject: str) -> None:
        self._nc = nc
        self.subject = subject
        self._waiting: dict[str, asyncio.Future[Ended]] = {}
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self.subject, cb=self._on_result)

    async def stop(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except nats.errors.Error as err:  # the connection may already be closed
                log.debug("unsubscribing %s: %s", self.subject, err)
        for future in self._waiting.values():
            future.cancel()
        self._waiting.clear()

    def expect(self, run_id: str) -> asyncio.Future[Ended]:
        future: asyncio.Future[Ended] = asyncio.get_running_loop().create_future()
        self._waiting[run_id] = future
        return future

    def forget(self, run_id: str) -> None:
        self._waiting.pop(run_id, None)

    async def _on_result(self, msg: Msg) -> None:
        try:
            event = ended_decoder.decode(msg.data)
        except msgspec.DecodeError as err:
            self._refuse(msg, err)
            return
        future = self._waiting.pop(event.run_id, None)
        if future is None:
            log.info("run %s: result arrived after its wait ended", event.run_id)
        elif not future.done():
            future.set_result(event)

    def _refuse(self, msg: Msg, err: msgspec.DecodeError) -> None:
        """Not a terminal event: say what it is, if it is an event at all."""
        try:
            other = event_decoder.decode(msg.data)
        except msgspec.DecodeError:
            log.error("result on %s does not decode: %s", msg.subject, err)
            return
        log.warning(
            "run %s: ignoring a %s event on %s", other.run_id, type(other).__name__, msg.subject
        )
