"""Following entries of the read model as they change.

Like ``services.common.index.IndexView``, but instead of answering look-ups a ``Feed`` hands
every change to callbacks: the current entries first (``start`` returns once they are applied),
then each put or delete as the registry makes it, usually within milliseconds. An
``IndexView`` that does not watch is the look-up side for the entries a feed keeps (worklet
heads: its ``put`` and ``delete`` are the feed's callbacks).

A KV watcher is an ordered consumer, which lives on the server: when NATS restarts, nats-py
only notices its loss after missed heartbeats, seconds later. So a feed also watches the
connection, and after a reconnect (or if its watcher ends) it watches again: the current
entries are applied again and keys that went away meanwhile are deleted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

import msgspec
import nats.errors
from nats.js.kv import KeyValue

from services.common.index import DELETES

log = logging.getLogger(__name__)

T = TypeVar("T")

START_TIMEOUT = 30.0  # seconds to receive the current entries
CHECK_EVERY = 0.25  # seconds between looks at the connection's reconnect count
RETRY_DELAY = 1.0  # seconds before watching again after a failure


class Feed(Generic[T]):
    """Calls ``on_put(key, value)`` or ``on_delete(key)`` for each change under ``pattern``.

    ``reconnects`` returns the connection's reconnect count (``nc.stats["reconnects"]``).
    """

    def __init__(
        self,
        kv: KeyValue,
        pattern: str,
        type_: type[T],
        on_put: Callable[[str, T], None],
        on_delete: Callable[[str], None],
        reconnects: Callable[[], int],
    ) -> None:
        self._kv = kv
        self._pattern = pattern
        self._decoder = msgspec.json.Decoder(type_)
        self._on_put = on_put
        self._on_delete = on_delete
        self._reconnects = reconnects
        self._known: set[str] = set()
        self._watcher: KeyValue.KeyWatcher | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        await self._watch()
        self._task = asyncio.create_task(self._run(), name=f"feed {self._pattern}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._stop_watcher()

    async def _watch(self) -> None:
        """Watch from now: apply every current entry, then delete the keys that are gone."""
        await self._stop_watcher()
        self._watcher = watcher = await self._kv.watch(self._pattern)
        seen: set[str] = set()
        # The watcher delivers every current entry, then None once it has caught up.
        while (entry := await watcher.updates(timeout=START_TIMEOUT)) is not None:
            seen.add(entry.key)
            self._apply(entry)
        for key in self._known - seen:
            self._deleted(key)

    async def _stop_watcher(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            try:
                await watcher.stop()
            except Exception as err:  # the connection or its subscription may be gone
                log.debug("stopping watcher %s: %s", self._pattern, err)

    async def _run(self) -> None:
        while True:
            reconnects = self._reconnects()
            follow = asyncio.create_task(self._follow())
            reconnected = asyncio.create_task(self._reconnected(reconnects))
            try:
                await asyncio.wait({follow, reconnected}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                follow.cancel()
                reconnected.cancel()
                await asyncio.gather(follow, reconnected, return_exceptions=True)
            if follow.done() and not follow.cancelled() and follow.exception() is not None:
                log.warning("watching %s failed: %r", self._pattern, follow.exception())
            log.info("watching %s again", self._pattern)
            while True:
                try:
                    await self._watch()
                    break
                except (nats.errors.Error, TimeoutError) as err:
                    log.warning("watching %s failed, retrying: %r", self._pattern, err)
                    await asyncio.sleep(RETRY_DELAY)

    async def _follow(self) -> None:
        assert self._watcher is not None
        async for entry in self._watcher:
            if entry is not None:
                self._apply(entry)

    async def _reconnected(self, before: int) -> None:
        # polled: the connection's reconnected callback belongs to services.common.bus
        while self._reconnects() == before:  # noqa: ASYNC110
            await asyncio.sleep(CHECK_EVERY)

    def _apply(self, entry: KeyValue.Entry) -> None:
        if entry.operation in DELETES or not entry.value:
            self._deleted(entry.key)
            return
        try:
            value = self._decoder.decode(entry.value)
        except msgspec.DecodeError as err:  # what it was is no longer what it is
            log.error("entry %s does not decode, dropping it: %s", entry.key, err)
            self._deleted(entry.key)
            return
        self._known.add(entry.key)
        try:
            self._on_put(entry.key, value)
        except Exception:  # one bad entry must not stop the feed
            log.exception("applying entry %s failed", entry.key)

    def _deleted(self, key: str) -> None:
        self._known.discard(key)
        try:
            self._on_delete(key)
        except Exception:
            log.exception("removing entry %s failed", key)
