"""Lean publishing on a NATS connection, for the per-run hot path (executor and gateway).

nats-py's ``publish`` validates the subject and encodes the headers dict on every call, and a
JetStream publish is a request (a random token, a ``wait_for``, a JSON parse of the ack into a
dataclass). A run sends a dozen messages whose subjects and headers are known up front, so here
they are written as ready-made ``PUB``/``HPUB`` commands, several per call, into the connection's
own pending buffer: they go out in order with everything else the connection sends, in one write
of its flusher, and are buffered across a reconnect exactly like a ``publish``. JetStream acks
come back on one wildcard inbox of this connection and resolve futures by token.

This relies on attributes of nats-py's ``Client`` that are not public (``_status``,
``_pending``, ``_pending_data_size``, ``_max_pending_size``, ``_flush_queue``: its outgoing
buffer and the queue that wakes its flusher, as ``Client.publish`` uses them). ``Wire`` checks
for them when it is made, so a client without them fails at start-up, not mid-run; the tests
exercise it against the installed nats-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

CRLF = b"\r\n"
STATUS = "Status"
NO_RESPONDERS = "503"


def header_block(*pairs: tuple[str, str]) -> bytes:
    """A NATS header block (``NATS/1.0`` then ``Key: Value`` lines) for HPUB."""
    lines = [b"NATS/1.0"]
    lines.extend(f"{key}: {value}".encode() for key, value in pairs)
    return CRLF.join(lines) + CRLF + CRLF


def hpub(subject: bytes, header: bytes, payload: bytes, reply: bytes = b"") -> bytes:
    """One HPUB command: ``subject`` (and ``reply``) encoded, ``header`` from header_block."""
    size = len(header)
    if reply:
        return b"HPUB %b %b %d %d\r\n%b%b\r\n" % (
            subject,
            reply,
            size,
            size + len(payload),
            header,
            payload,
        )
    return b"HPUB %b %d %d\r\n%b%b\r\n" % (subject, size, size + len(payload), header, payload)


def pub(subject: bytes, payload: bytes, reply: bytes = b"") -> bytes:
    """One PUB command (no headers)."""
    if reply:
        return b"PUB %b %b %d\r\n%b\r\n" % (subject, reply, len(payload), payload)
    return b"PUB %b %d\r\n%b\r\n" % (subject, len(payload), payload)


def expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


async def within(seconds: float, *futures: asyncio.Future[Any]) -> None:
    """Await ``futures`` in turn; TimeoutError once ``seconds`` have passed.

    Cheaper than ``asyncio.timeout``: one timer that fails the awaited future, no cancellation.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    for future in futures:
        if future.done():
            future.result()
            continue
        timer = loop.call_at(deadline, expire, future)
        try:
            await future
        finally:
            timer.cancel()


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int | None = None
    description: str | None = None


class _PubAck(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: _ApiError | None = None


_ack_decoder = msgspec.json.Decoder(_PubAck)


class Wire:
    """Ready-made commands onto a nats-py connection; JetStream acks by token."""

    _loop: asyncio.AbstractEventLoop  # set by start

    def __init__(self, nc: Client) -> None:
        for name in (
            "_status",
            "_pending",
            "_pending_data_size",
            "_flush_queue",
            "_max_pending_size",
        ):
            if not hasattr(nc, name):
                raise RuntimeError(f"this nats-py Client has no {name}: Wire cannot use it")
        self._nc = nc
        self._acks: dict[str, asyncio.Future[None]] = {}
        self._tokens = itertools.count(1)
        self._prefix = ""
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._prefix = self._nc.new_inbox() + "."
        self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._on_ack)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):  # the connection may be closed already
                await self._sub.unsubscribe()
        for future in self._acks.values():
            future.cancel()
        self._acks.clear()

    @property
    def max_payload(self) -> int:
        return int(self._nc.max_payload)

    # ------------------------------------------------------------ sending

    def send(self, *commands: bytes) -> None:
        """Queue ``commands`` on the connection, in order; its flusher writes them in one go.

        Raises like ``Client.publish``: closed or draining connection, or (while reconnecting)
        a full reconnect buffer. Never suspends, so a caller's commands stay together.
        """
        nc: Any = self._nc
        size = sum(map(len, commands))
        if nc._status != Client.CONNECTED:  # the rare cases, checked as Client.publish does
            if nc.is_closed:
                raise nats.errors.ConnectionClosedError
            if nc.is_draining_pubs:
                raise nats.errors.ConnectionDrainingError
            if not nc.is_connected:  # reconnecting: buffered, written once connected again
                limit = nc._max_pending_size
                if limit <= 0 or size + nc._pending_data_size > limit:
                    raise nats.errors.OutboundBufferLimitError
                nc._pending.extend(commands)
                nc._pending_data_size += size
                return
        nc._pending.extend(commands)
        nc._pending_data_size += size
        queue: asyncio.Queue[asyncio.Future[Any]] | None = nc._flush_queue
        if queue is not None and queue.empty():
            # Wake the flusher (what Client.publish does); it resolves the future itself.
            queue.put_nowait(self._loop.create_future())

    def check_size(self, payload: bytes) -> None:
        if len(payload) > self._nc.max_payload:
            raise nats.errors.MaxPayloadError

    def expect_ack(self) -> tuple[bytes, asyncio.Future[None]]:
        """A reply subject for one JetStream publish and the future its ack resolves.

        The future raises ``NoRespondersError`` (no stream took the message) or
        ``nats.js.errors.APIError`` (the stream refused it). ``forget`` it when the ack is no
        longer awaited (timed out, cancelled, given up).
        """
        token = str(next(self._tokens))
        future: asyncio.Future[None] = self._loop.create_future()
        self._acks[token] = future
        return (self._prefix + token).encode(), future

    def forget(self, reply: bytes, future: asyncio.Future[None]) -> None:
        """Stop waiting for the ack to ``reply``, whatever became of ``future``."""
        self._acks.pop(reply[len(self._prefix) :].decode(), None)
        if not future.done():
            future.cancel()
        elif not future.cancelled():
            future.exception()  # seen: no "exception was never retrieved" when collected

    async def _on_ack(self, msg: Msg) -> None:
        future = self._acks.pop(msg.subject[len(self._prefix) :], None)
        if future is None or future.done():
            return
        headers = msg.headers
        if headers and STATUS in headers:
            if headers[STATUS] == NO_RESPONDERS:
                future.set_exception(nats.errors.NoRespondersError())
            else:
                future.set_exception(
                    nats.js.errors.APIError(
                        code=int(headers[STATUS]), description=headers.get("Description")
                    )
                )
            return
        try:
            ack = _ack_decoder.decode(msg.data)
        except msgspec.DecodeError as err:
            future.set_exception(nats.js.errors.APIError(description=f"bad ack: {err}"))
            return
        if ack.error is not None:
            error = ack.error
            future.set_exception(
                nats.js.errors.APIError(
                    code=error.code, err_code=error.err_code, description=error.description
                )
            )
        else:
            future.set_result(None)
