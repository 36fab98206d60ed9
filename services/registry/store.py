"""MongoDB, the registry's source of truth: collections, indexes, and how values are stored.

Collections (``_id`` is the object's id unless noted):

- ``applications``: ``name``, ``created_at``
- ``api_keys``: ``app_id``, ``name``, ``role``, ``key_hash`` (sha256 hex, unique; the key itself
  is never stored), ``created_at``, ``revoked_at`` (null while active)
- ``worklets``: the current head: ``app_id``, ``name`` (unique per application), ``version``,
  ``settings`` (JSON text), ``created_at``, ``updated_at``
- ``worklet_versions``: ``_id`` = ``{worklet_id}.{version}``, ``app_id``, ``worklet_id``,
  ``version``, ``name``, ``definition`` (JSON text), ``created_at``; immutable, kept after delete
- ``secrets``: ``_id`` = ``{app_id}/{name}``, ``app_id``, ``name``, ``sealed`` (the value
  sealed under ``WORKLETS_SECRETS_KEY``, ``services/common/sealing.py``), ``updated_at``
- ``runs``: ``_id`` = ``run_id`` = the run id (see ``persist.py`` for the other fields)
- ``schedules``: one per worklet, ``_id`` = the worklet id: ``app_id``, ``worklet_id``,
  ``schedule_id`` (kept by every later PUT), ``spec`` (the ``ScheduleSpec``, JSON text),
  ``anchor`` (origin of an ``every`` schedule's slots), ``created_at``, ``updated_at``
- ``views``: ``app_id``, ``name`` (unique per application), ``title``, ``definition`` (the
  ``ViewDefinition`` with worklet references resolved, JSON text), ``created_at``, ``updated_at``

Portability (nx-27017): user JSON is stored as JSON text, timestamps as fixed-width ISO-8601
UTC text (``2026-01-31T12:00:00.000000Z``, which sorts by time and survives ``$set``/``$min``;
nx-27017 turns a datetime written by ``$set`` into a differently formatted string), no booleans.
The runs indexes use the ``run_id`` field, a copy of ``_id``: nx-27017 fails every write to a
collection with a compound index that contains ``_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from services.common.sealing import Sealer, SealError

Document = dict[str, Any]

_STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


def stamp(moment: datetime) -> str:
    """A timestamp as stored: UTC, microseconds, fixed width (naive datetimes are UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(_STAMP)


def now_stamp() -> str:
    return stamp(datetime.now(UTC))


def parse_stamp(value: str) -> datetime:
    return datetime.strptime(value, _STAMP).replace(tzinfo=UTC)


def maybe_stamp(value: Any) -> datetime | None:
    return parse_stamp(value) if isinstance(value, str) and value else None


async def find_by_ref(
    collection: AsyncCollection[Document],
    app_id: str,
    ref: str,
    projection: dict[str, int] | None = None,
) -> Document | None:
    """The application's document whose id, else whose name, is ``ref``."""
    found = await collection.find_one({"_id": ref, "app_id": app_id}, projection)
    return found or await collection.find_one({"app_id": app_id, "name": ref}, projection)


@dataclass(frozen=True)
class Store:
    db: AsyncDatabase[Document]

    @property
    def applications(self) -> AsyncCollection[Document]:
        return self.db["applications"]

    @property
    def api_keys(self) -> AsyncCollection[Document]:
        return self.db["api_keys"]

    @property
    def worklets(self) -> AsyncCollection[Document]:
        return self.db["worklets"]

    @property
    def versions(self) -> AsyncCollection[Document]:
        return self.db["worklet_versions"]

    @property
    def secrets(self) -> AsyncCollection[Document]:
        return self.db["secrets"]

    @property
    def runs(self) -> AsyncCollection[Document]:
        return self.db["runs"]

    @property
    def schedules(self) -> AsyncCollection[Document]:
        return self.db["schedules"]

    @property
    def views(self) -> AsyncCollection[Document]:
        return self.db["views"]

    async def reseal_secrets(self, sealer: Sealer) -> tuple[int, int]:
        """Seal under the current key what is not: values stored in plain text by an earlier
        version (a ``value`` field), and values sealed under a previous key. Returns (sealed
        again, unreadable: under no key given, left as they are)."""
        resealed = unreadable = 0
        async for doc in self.secrets.find({}):
            app_id, name = doc["app_id"], doc["name"]
            if "value" in doc:
                plain, was = doc["value"], {"value": doc["value"]}
            elif sealer.is_current(app_id, name, doc["sealed"]):
                continue
            else:
                try:
                    plain, was = sealer.open(app_id, name, doc["sealed"]), {"sealed": doc["sealed"]}
                except SealError:
                    unreadable += 1
                    continue
            await self.secrets.update_one(
                {"_id": doc["_id"], **was},
                {"$set": {"sealed": sealer.seal(app_id, name, plain)}, "$unset": {"value": ""}},
            )
            resealed += 1
        return resealed, unreadable

    async def create_indexes(self) -> None:
        await self.api_keys.create_indexes(
            [
                IndexModel([("key_hash", ASCENDING)], unique=True),
                IndexModel([("app_id", ASCENDING), ("created_at", ASCENDING)]),
            ]
        )
        await self.worklets.create_indexes(
            [IndexModel([("app_id", ASCENDING), ("name", ASCENDING)], unique=True)]
        )
        await self.versions.create_indexes(
            [IndexModel([("worklet_id", ASCENDING), ("version", DESCENDING)])]
        )
        await self.secrets.create_indexes([IndexModel([("app_id", ASCENDING)])])
        await self.runs.create_indexes(
            [
                IndexModel([("app_id", ASCENDING), ("run_id", DESCENDING)]),
                IndexModel(
                    [("app_id", ASCENDING), ("worklet_id", ASCENDING), ("run_id", DESCENDING)]
                ),
                IndexModel([("app_id", ASCENDING), ("status", ASCENDING), ("run_id", DESCENDING)]),
                IndexModel(
                    [("app_id", ASCENDING), ("schedule_id", ASCENDING), ("run_id", DESCENDING)]
                ),
            ]
        )
        await self.schedules.create_indexes(
            [
                IndexModel([("app_id", ASCENDING)]),
                IndexModel([("schedule_id", ASCENDING)], unique=True),
            ]
        )
        await self.views.create_indexes(
            [IndexModel([("app_id", ASCENDING), ("name", ASCENDING)], unique=True)]
        )
