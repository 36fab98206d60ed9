"""What request handlers need, built by the lifespan and kept on ``app.state``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated
from weakref import WeakValueDictionary

from fastapi import Depends, Request

from services.common.sealing import Sealer
from services.registry.errors import Unavailable
from services.registry.readmodel import ReadModel
from services.registry.store import Store
from shared.settings import RegistrySettings


@dataclass(frozen=True)
class Registry:
    settings: RegistrySettings
    store: Store
    readmodel: ReadModel
    sealer: Sealer
    _locks: WeakValueDictionary[str, asyncio.Lock] = field(default_factory=WeakValueDictionary)

    def writing(self, app_id: str) -> asyncio.Lock:
        """Held while an application's MongoDB write and its read-model update happen, so
        the key-value entries end up in the order of the MongoDB writes."""
        lock = self._locks.get(app_id)
        if lock is None:
            lock = self._locks[app_id] = asyncio.Lock()
        return lock


def get_registry(request: Request) -> Registry:
    registry: Registry | None = getattr(request.app.state, "registry", None)
    if registry is None:
        raise Unavailable("the registry is starting or stopping")
    return registry


RegistryDep = Annotated[Registry, Depends(get_registry)]
