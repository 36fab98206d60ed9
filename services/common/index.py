"""A live, in-memory view of part of the registry's key-value read model.

The gateway and the executor answer look-ups (API keys, worklet heads, definitions, secrets)
from memory: a watcher keeps the view current, so nothing on the invoke path waits on the
registry or on MongoDB. A miss falls back to one key-value read, which covers an entry written
a moment ago that the watcher has not delivered yet.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Generic, TypeVar

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

T = TypeVar("T")

DELETES = ("DEL", "PURGE")  # KV operations that remove an entry


class IndexView(Generic[T]):
    """Entries of one bucket whose keys match ``pattern`` (e.g. ``key.>``), decoded as T."""

    def __init__(self, kv: KeyValue, pattern: str, type_: type[T], *, watch: bool = True):
        self._kv = kv
        self._pattern = pattern
        self._decoder = msgspec.json.Decoder(type_)
        self._watch = watch
        self._entries: dict[str, T] = {}
        self._task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None

    async def start(self) -> None:
        if not self._watch:
            return
        self._watcher = await self._kv.watch(self._pattern)
        # The watcher delivers every current entry, then None once it has caught up.
        while (entry := await self._watcher.updates(timeout=30)) is not None:
            self._apply(entry)
        self._task = asyncio.create_task(self._follow(), name=f"index-watch {self._pattern}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._watcher is not None:
            try:
                await self._watcher.stop()
            except Exception as err:  # the connection may already be closed
                log.debug("stopping watcher %s: %s", self._pattern, err)

    async def _follow(self) -> None:
        assert self._watcher is not None
        async for entry in self._watcher:
            if entry is not None:
                self._apply(entry)

    def _apply(self, entry: KeyValue.Entry) -> None:
        if entry.operation in DELETES or not entry.value:
            self._entries.pop(entry.key, None)
            return
        try:
            self._entries[entry.key] = self._decoder.decode(entry.value)
        except msgspec.DecodeError as err:
            log.error("index entry %s does not decode: %s", entry.key, err)

    def put(self, key: str, value: T) -> None:
        """Keep ``value`` (a view that does not watch, fed by a ``Feed`` instead)."""
        self._entries[key] = value

    def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    def cached(self, key: str) -> T | None:
        return self._entries.get(key)

    async def get(self, key: str) -> T | None:
        found = self._entries.get(key)
        if found is not None:
            return found
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        if entry.value is None or entry.operation in DELETES:
            return None
        value = self._decoder.decode(entry.value)
        self._entries[key] = value
        return value
