"""API keys, worklet heads and views, answered from memory (the registry's key-value read
model)."""

from __future__ import annotations

import hashlib
import logging
from typing import TypeVar

import nats.errors

from services.common.index import IndexView
from services.gateway.errors import GatewayError
from shared.errors import ErrorCode
from shared.schemas import ApiKeyEntry, ViewEntry, WorkletHead
from shared.subjects import Names, is_id

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEME = "api-key"
MAX_CACHED_HASHES = 10_000

_MALFORMED = "Send the header `Authorization: Api-Key YOUR_API_KEY`"


async def _read(view: IndexView[T], key: str) -> T | None:
    """An entry not in memory (yet): read from the bucket; NATS failing then is a 503."""
    try:
        return await view.get(key)
    except (nats.errors.Error, TimeoutError) as err:
        log.warning("reading the index failed: %r", err)
        raise GatewayError(
            ErrorCode.UNAVAILABLE, "The key index is unavailable; try again shortly"
        ) from None


def check_ids(*ids: str) -> None:
    """Ids from a path go into subjects and keys: anything but a plain id is an unknown route."""
    for value in ids:
        if not is_id(value):
            raise GatewayError(ErrorCode.NOT_FOUND, "No such route")


class Access:
    """Checks a request's key against the application in its path and finds the worklet or
    the view."""

    def __init__(
        self,
        keys: IndexView[ApiKeyEntry],
        heads: IndexView[WorkletHead],
        views: IndexView[ViewEntry],
    ) -> None:
        self._keys = keys
        self._heads = heads
        self._views = views
        self._hashes: dict[str, str] = {}  # API key -> key-value key, for keys that exist

    def _entry_key(self, key: str) -> str:
        cached = self._hashes.get(key)
        if cached is not None:
            return cached
        return Names.key_entry(hashlib.sha256(key.encode()).hexdigest())

    async def check_key(self, header: str | None, app_id: str) -> ApiKeyEntry:
        """The key's entry; 401 without a known key, 403 for a key of another application."""
        if not header:
            raise GatewayError(ErrorCode.UNAUTHORIZED, f"Missing API key. {_MALFORMED}")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != SCHEME or not key:
            raise GatewayError(
                ErrorCode.UNAUTHORIZED, f"Malformed Authorization header. {_MALFORMED}"
            )
        entry_key = self._entry_key(key)
        entry = self._keys.cached(entry_key)
        if entry is None:
            entry = await _read(self._keys, entry_key)
        if entry is None:
            self._hashes.pop(key, None)
            raise GatewayError(ErrorCode.UNAUTHORIZED, "Unknown or revoked API key")
        if key not in self._hashes:
            if len(self._hashes) >= MAX_CACHED_HASHES:
                self._hashes.clear()
            self._hashes[key] = entry_key
        if entry.app_id != app_id:  # said before anything about the worklet is looked up
            raise GatewayError(
                ErrorCode.FORBIDDEN, "This API key is not valid for this application"
            )
        return entry

    async def worklet(self, app_id: str, worklet_id: str) -> WorkletHead:
        key = Names.worklet_head(app_id, worklet_id)
        head = self._heads.cached(key)
        if head is None:
            head = await _read(self._heads, key)
        if head is None or head.app_id != app_id:
            raise GatewayError(ErrorCode.NOT_FOUND, f"Worklet {worklet_id} not found")
        return head

    async def view(self, app_id: str, view_id: str) -> ViewEntry:
        key = Names.view(app_id, view_id)
        entry = self._views.cached(key)
        if entry is None:
            entry = await _read(self._views, key)
        if entry is None or entry.app_id != app_id:
            raise GatewayError(ErrorCode.NOT_FOUND, f"View {view_id} not found")
        return entry
