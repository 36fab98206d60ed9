"""The ``runs.get`` responder: the gateway asks for a run the EVENTS stream no longer has.

Request: ``RunLookup`` JSON on ``{p}.registry.runs.get`` (queue group ``registry``). Answer:
``RunState`` JSON, or an empty reply with the header ``Worklets-Error`` set to ``not_found``
(no run with that id, application and worklet), ``invalid_request`` or ``unavailable``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from pymongo.errors import PyMongoError

from services.registry import records
from services.registry.store import Store
from shared.errors import ErrorCode
from shared.schemas import RunLookup, encoder
from shared.subjects import ERROR_HEADER, REGISTRY_QUEUE, Names

log = logging.getLogger(__name__)

_decoder = msgspec.json.Decoder(RunLookup)


class RunLookupResponder:
    def __init__(self, nc: Client, store: Store, names: Names) -> None:
        self._nc = nc
        self._store = store
        self._names = names

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[RunLookupResponder]:
        subject = self._names.registry_runs_get
        sub = await self._nc.subscribe(subject, queue=REGISTRY_QUEUE, cb=self._answer)
        try:
            yield self
        finally:
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()

    async def _answer(self, msg: Msg) -> None:
        if not msg.reply:
            return
        try:
            await self._nc.publish(msg.reply, await self._look_up(msg.data))
        except _Refusal as refusal:
            await self._nc.publish(msg.reply, b"", headers={ERROR_HEADER: refusal.code})

    async def _look_up(self, data: bytes) -> bytes:
        try:
            request = _decoder.decode(data)
        except msgspec.DecodeError as err:
            log.warning("runs.get: undecodable request: %s", err)
            raise _Refusal(ErrorCode.INVALID_REQUEST) from None
        try:
            found = await self._store.runs.find_one(
                {"_id": request.run_id, "app_id": request.app_id, "worklet_id": request.worklet_id}
            )
        except PyMongoError as err:
            log.warning("runs.get %s: MongoDB failed: %s", request.run_id, err)
            raise _Refusal(ErrorCode.UNAVAILABLE) from None
        if found is None:
            raise _Refusal(ErrorCode.NOT_FOUND)
        return encoder.encode(records.state(found))


class _Refusal(Exception):
    def __init__(self, code: ErrorCode) -> None:
        super().__init__(code)
        self.code = code.value
