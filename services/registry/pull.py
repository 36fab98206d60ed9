"""Batches from a durable JetStream pull consumer, with little work per message.

nats-py's ``PullSubscription.fetch`` waits for each message separately (a task and a timer per
message), which costs more CPU than everything else the persister does with an event. Here the
pull requests of the JetStream API (``$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>``) are
published directly and their messages collected by one subscription callback:

- a long poll ``{"batch": 1, "expires": wait}`` waits for the first message;
- the caller may then *linger* a little, so the events published meanwhile come too;
- ``{"batch": n, "no_wait": true}`` then takes what is ready; the server ends it with status
  404 when it had fewer than ``n`` (408 ends a long poll that expired).

So a fetch costs two pull requests however many messages it returns, and lingering makes it
return many: the server sends them in one burst, which costs both processes far less than a
request and a wake-up per message.

Messages are ordinary JetStream messages: ``ack``, ``nak`` and ``term`` work as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

MAX_BYTES = 64 * 1024 * 1024  # per request: bounds the memory a batch can take
GRACE = 1.0  # seconds past a request's own expiry before the client stops waiting
_ENDS = {"404", "408"}  # no messages (no_wait), request expired


class PullError(NatsError):
    """The server ended a pull request with an error status (e.g. 409, 503)."""


class Puller:
    def __init__(self, nc: Client, stream: str, consumer: str) -> None:
        self._nc = nc
        self._api = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._inbox = nc.new_inbox()
        self._sub: Subscription | None = None
        self._ready: list[Msg] = []
        self._target = 0  # messages in ``_ready`` that end the current request
        self._done = asyncio.Event()
        self._failure: str | None = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._receive)

    async def stop(self) -> None:
        """Stop receiving; messages delivered but never fetched go back to the server now
        rather than after the ack wait."""
        if self._sub is not None:
            with contextlib.suppress(NatsError):  # the connection may be closing already
                await self._sub.unsubscribe()
        leftovers, self._ready = self._ready, []
        with contextlib.suppress(NatsError):
            for msg in leftovers:
                await msg.nak()

    async def fetch(self, batch: int, wait: float, linger: float = 0.0) -> list[Msg]:
        """Up to ``batch`` messages: waits up to ``wait`` seconds for the first, then
        ``linger`` seconds more, then takes whatever else the server has ready. An empty list
        when nothing came; PullError when the server refused (the consumer is gone, too many
        waiting requests...)."""
        if not self._ready:
            await self._request(1, {"expires": int(wait * 1e9)}, wait + GRACE)
        if self._ready and len(self._ready) < batch and linger > 0:
            await asyncio.sleep(linger)
        if self._ready and len(self._ready) < batch:
            await self._request(batch - len(self._ready), {"no_wait": True}, GRACE)
        failure, self._failure = self._failure, None
        if failure is not None and not self._ready:
            raise PullError(failure)
        taken, self._ready = self._ready[:batch], self._ready[batch:]
        return taken

    async def _request(self, count: int, options: dict[str, object], patience: float) -> None:
        self._target = len(self._ready) + count
        self._done.clear()
        body = json.dumps({"batch": count, "max_bytes": MAX_BYTES, **options}).encode()
        await self._nc.publish(self._api, body, reply=self._inbox)
        # A message arriving after this gave up (a reconnect, a slow server) is kept for the
        # next fetch: it was delivered and must be acked like the others.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(patience):
                await self._done.wait()

    async def _receive(self, msg: Msg) -> None:
        if not msg.reply and msg.headers and "Status" in msg.headers:
            status = msg.headers["Status"]
            if status == "100":  # idle heartbeat
                return
            if status not in _ENDS:
                self._failure = (
                    f"pull request refused: {status} {msg.headers.get('Description', '')}"
                )
            self._done.set()
            return
        self._ready.append(msg)
        if len(self._ready) >= self._target:
            self._done.set()
