"""A run's state for a poll: its last event in the EVENTS stream, else the registry's record."""

from __future__ import annotations

import logging

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from services.gateway.answers import PollAnswer, poll_from_event, poll_from_state
from services.gateway.errors import GatewayError
from shared.errors import ErrorCode
from shared.schemas import RunLookup, RunState, encoder, event_decoder
from shared.settings import GatewaySettings
from shared.subjects import ERROR_HEADER

log = logging.getLogger(__name__)

LOOKUP_TIMEOUT = 5.0  # seconds for the registry to answer a look-up

_state_decoder = msgspec.json.Decoder(RunState)


def _not_found(run_id: str) -> GatewayError:
    return GatewayError(ErrorCode.NOT_FOUND, f"Run {run_id} not found")


def _unavailable(run_id: str, what: str, err: object) -> GatewayError:
    log.warning("run %s: %s failed: %r", run_id, what, err)
    return GatewayError(ErrorCode.UNAVAILABLE, "Run state is unavailable; try again shortly")


class Poller:
    def __init__(self, nc: Client, settings: GatewaySettings) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._names = settings.names

    async def poll(self, app_id: str, worklet_id: str, run_id: str) -> PollAnswer:
        if not self._nc.is_connected:
            raise GatewayError(ErrorCode.UNAVAILABLE, "Not connected to NATS; try again shortly")
        subject = self._names.events(app_id, worklet_id, run_id)
        try:
            msg = await self._js.get_last_msg(self._names.events_stream, subject, direct=True)
        except NotFoundError:
            return await self._ask_registry(app_id, worklet_id, run_id)
        except (nats.errors.Error, TimeoutError) as err:
            raise _unavailable(run_id, "reading the last event", err) from None
        try:
            event = event_decoder.decode(msg.data or b"")
        except msgspec.DecodeError as err:
            log.error("run %s: last event on %s does not decode: %s", run_id, subject, err)
            raise GatewayError(ErrorCode.INTERNAL, "The run's state could not be read") from None
        return poll_from_event(event)

    async def _ask_registry(self, app_id: str, worklet_id: str, run_id: str) -> PollAnswer:
        """The stream no longer has the run (or never had it): ask the registry."""
        lookup = RunLookup(app_id=app_id, worklet_id=worklet_id, run_id=run_id)
        try:
            reply = await self._nc.request(
                self._names.registry_runs_get, encoder.encode(lookup), timeout=LOOKUP_TIMEOUT
            )
        except (nats.errors.Error, TimeoutError) as err:
            raise _unavailable(run_id, "asking the registry", err) from None
        error = reply.headers.get(ERROR_HEADER) if reply.headers else None
        if error == ErrorCode.NOT_FOUND:
            raise _not_found(run_id)
        if error is not None:
            raise _unavailable(run_id, "asking the registry", error)
        try:
            state = _state_decoder.decode(reply.data)
        except msgspec.DecodeError as err:
            raise _unavailable(run_id, "decoding the registry's answer", err) from None
        if state.app_id != app_id or state.worklet_id != worklet_id or state.run_id != run_id:
            raise _not_found(run_id)
        return poll_from_state(state)
