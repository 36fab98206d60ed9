"""The key-value read model (bucket ``{P}_INDEX``) the gateway, executor and scheduler follow.

MongoDB is the source of truth; after each write the registry puts the affected entries here
(or deletes them) and broadcasts a ``ChangeNotice``. At start-up ``rebuild`` rewrites the bucket
from MongoDB, which repairs a crash between a MongoDB write and its key-value put.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import Literal

import msgspec
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from services.registry.store import Document, Store, parse_stamp
from shared.schemas import (
    ApiKeyEntry,
    ChangeNotice,
    Definition,
    ScheduleEntry,
    ScheduleSpec,
    SecretEntry,
    ViewDefinition,
    ViewEntry,
    WorkletHead,
    WorkletSettings,
    WorkletVersion,
    encoder,
)
from shared.subjects import Names

log = logging.getLogger(__name__)

Kind = Literal["application", "key", "worklet", "secret", "schedule", "view"]

_settings_decoder = msgspec.json.Decoder(WorkletSettings)
_definition_decoder = msgspec.json.Decoder(Definition)
_spec_decoder = msgspec.json.Decoder(ScheduleSpec)
_view_decoder = msgspec.json.Decoder(ViewDefinition)
_CONCURRENCY = 64  # key-value puts in flight during a rebuild
# entries removed when MongoDB lacks them
_OWNED_PREFIXES = ("key.", "worklet.", "secret.", "schedule.", "view.")


def settings_of(doc: Document) -> WorkletSettings:
    return _settings_decoder.decode(doc["settings"])


def definition_of(doc: Document) -> Definition:
    return _definition_decoder.decode(doc["definition"])


def spec_of(doc: Document) -> ScheduleSpec:
    return _spec_decoder.decode(doc["spec"])


def view_definition_of(doc: Document) -> ViewDefinition:
    return _view_decoder.decode(doc["definition"])


# ---------------------------------------------------------------- MongoDB document -> entry


def key_entry(doc: Document) -> tuple[str, bytes]:
    entry = ApiKeyEntry(key_id=doc["_id"], app_id=doc["app_id"], role=doc["role"])
    return Names.key_entry(doc["key_hash"]), encoder.encode(entry)


def head_entry(doc: Document) -> tuple[str, bytes]:
    entry = WorkletHead(
        app_id=doc["app_id"],
        worklet_id=doc["_id"],
        name=doc["name"],
        version=doc["version"],
        settings=settings_of(doc),
    )
    return Names.worklet_head(doc["app_id"], doc["_id"]), encoder.encode(entry)


def version_entry(doc: Document) -> tuple[str, bytes]:
    entry = WorkletVersion(
        app_id=doc["app_id"],
        worklet_id=doc["worklet_id"],
        version=doc["version"],
        definition=definition_of(doc),
        created_at=parse_stamp(doc["created_at"]),
    )
    return Names.worklet_version(doc["app_id"], doc["worklet_id"], doc["version"]), encoder.encode(
        entry
    )


def secret_entry(doc: Document) -> tuple[str, bytes]:
    entry = SecretEntry(app_id=doc["app_id"], name=doc["name"], sealed=doc["sealed"])
    return Names.secret(doc["app_id"], doc["name"]), encoder.encode(entry)


def schedule_of(doc: Document) -> ScheduleEntry:
    return ScheduleEntry(
        schedule_id=doc["schedule_id"],
        app_id=doc["app_id"],
        worklet_id=doc["worklet_id"],
        spec=spec_of(doc),
        anchor=parse_stamp(doc["anchor"]),
        updated_at=parse_stamp(doc["updated_at"]),
    )


def schedule_entry(doc: Document) -> tuple[str, bytes]:
    return Names.schedule(doc["app_id"], doc["worklet_id"]), encoder.encode(schedule_of(doc))


def view_entry(doc: Document) -> tuple[str, bytes]:
    entry = ViewEntry(
        app_id=doc["app_id"],
        view_id=doc["_id"],
        definition=view_definition_of(doc),
        updated_at=parse_stamp(doc["updated_at"]),
    )
    return Names.view(doc["app_id"], doc["_id"]), encoder.encode(entry)


# ---------------------------------------------------------------- writing


class ReadModel:
    def __init__(self, kv: KeyValue, nc: Client, names: Names) -> None:
        self._kv = kv
        self._nc = nc
        self._names = names
        self._stream = f"KV_{names.index_bucket}"
        self._subject_prefix = f"$KV.{names.index_bucket}."

    async def put(self, *entries: tuple[str, bytes]) -> None:
        for key, value in entries:
            await self._kv.put(key, value)

    async def delete(self, key: str) -> None:
        await self._kv.delete(key)

    async def announce(
        self, app_id: str, kind: Kind, id_: str, action: Literal["put", "delete"]
    ) -> None:
        """Tell caches (the scheduler, anyone) that something of ``app_id`` changed."""
        notice = ChangeNotice(app_id=app_id, kind=kind, id=id_, action=action)
        await self._nc.publish(self._names.changes(app_id), encoder.encode(notice))

    async def rebuild(self, store: Store) -> None:
        """Rewrite every entry from MongoDB; delete key/worklet/secret/schedule/view entries it
        lacks (a schedule whose worklet is gone counts as lacking)."""
        present = await self._keys()
        wanted: set[str] = set()

        async def put_all(documents: Iterable[tuple[str, bytes]]) -> None:
            pending: list[Awaitable[int]] = []
            for key, value in documents:
                wanted.add(key)
                pending.append(self._kv.put(key, value))
                if len(pending) >= _CONCURRENCY:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)

        await put_all([key_entry(d) async for d in store.api_keys.find({"revoked_at": None})])
        heads = [d async for d in store.worklets.find({})]
        await put_all(head_entry(d) for d in heads)
        await put_all([secret_entry(d) async for d in store.secrets.find({})])
        worklets = {d["_id"] for d in heads}
        await put_all(
            [schedule_entry(d) async for d in store.schedules.find({}) if d["_id"] in worklets]
        )
        await put_all([view_entry(d) async for d in store.views.find({})])
        async for batch in _batches(store, 500):
            await put_all(version_entry(d) for d in batch)

        # Keys revoked while this ran are deleted too: MongoDB is read again after the puts.
        active = {d["key_hash"] async for d in store.api_keys.find({"revoked_at": None})}
        candidates = [
            key
            for key in present | wanted
            if key.startswith(_OWNED_PREFIXES)
            and (key not in wanted or (key.startswith("key.") and key[4:] not in active))
        ]
        stale = [key for key in candidates if await self._live(key)]
        for key in stale:
            await self._kv.delete(key)
        log.info(
            "read model rebuilt: %d entries written, %d stale entries deleted",
            len(wanted),
            len(stale),
        )

    async def _keys(self) -> set[str]:
        """Every key with an entry or a delete marker. (``KeyValue.keys()`` can come back
        empty when the server delivers faster than its watcher starts.)"""
        info = await self._nc.jetstream().stream_info(
            self._stream, subjects_filter=f"{self._subject_prefix}>"
        )
        subjects = info.state.subjects or {}
        if len(subjects) < info.state.messages:
            log.warning("the bucket has more keys than one listing returns; some were skipped")
        return {subject[len(self._subject_prefix) :] for subject in subjects}

    async def _live(self, key: str) -> bool:
        try:
            await self._kv.get(key)
        except KeyNotFoundError:  # also KeyDeletedError
            return False
        return True


async def _batches(store: Store, size: int) -> AsyncIterator[list[Document]]:
    batch: list[Document] = []
    async for doc in store.versions.find({}):
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
