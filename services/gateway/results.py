"""Terminal events for this process's synchronous waits, on one subscription per process."""

from __future__ import annotations

import asyncio
import logging

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from shared.schemas import RunEvent, TerminalEvent, event_decoder

log = logging.getLogger(__name__)


class Results:
    """Futures by run id, resolved by the terminal events sent to ``subject``."""

    def __init__(self, nc: Client, subject: str) -> None:
        self._nc = nc
        self.subject = subject
        self._waiting: dict[str, asyncio.Future[TerminalEvent]] = {}
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

    def expect(self, run_id: str) -> asyncio.Future[TerminalEvent]:
        future: asyncio.Future[TerminalEvent] = asyncio.get_running_loop().create_future()
        self._waiting[run_id] = future
        return future

    def forget(self, run_id: str) -> None:
        self._waiting.pop(run_id, None)

    async def _on_result(self, msg: Msg) -> None:
        try:
            event: RunEvent = event_decoder.decode(msg.data)
        except msgspec.DecodeError as err:
            log.error("result on %s does not decode: %s", msg.subject, err)
            return
        if not isinstance(event, TerminalEvent):
            log.warning(
                "run %s: ignoring a %s event on %s", event.run_id, type(event).__name__, msg.subject
            )
            return
        future = self._waiting.pop(event.run_id, None)
        if future is None:
            log.info("run %s: result arrived after its wait ended", event.run_id)
        elif not future.done():
            future.set_result(event)
