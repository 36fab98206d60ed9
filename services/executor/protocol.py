"""Frames between the executor and its worker subprocesses.

Each frame is a 4-byte big-endian length then a msgpack body. Requests go on the worker's
stdin, answers come back on a dedicated pipe, so nothing user code prints can corrupt them.
User data (inputs, outputs, env) travels inside as JSON bytes, decoded only where it is used.
This module is imported by the worker too: msgspec and the shared schemas only.
"""

from __future__ import annotations

import struct

import msgspec
from msgspec import Struct, field

from shared.errors import RunErrorType
from shared.schemas import RunError

HEADER = struct.Struct(">I")
EXIT_MEMORY = 86  # a worker that ran out of memory exits with this code
EMPTY_ENV = b"{}"


def memory_error(block: str, memory_mb: int) -> RunError:
    """The error of a block that ran out of memory, as the worker or the executor tells it."""
    return RunError(
        type=RunErrorType.MEMORY_LIMIT,
        message=f"Block {block!r} ran out of memory (limit {memory_mb} MB per worker)",
        block=block,
    )


class CallContext(Struct, kw_only=True):
    run_id: str
    worklet_id: str
    app_id: str
    version: int
    block_id: str
    trigger: str
    parent_run_id: str | None = None
    attempt: int = 1


class Call(Struct, kw_only=True, tag="call"):
    """Run one code block. ``source`` is sent only to a worker that has not loaded ``key``."""

    key: str  # app/worklet/version/block
    source: str | None = None
    function: str | None = None
    input: bytes = b"null"  # JSON
    env: bytes = EMPTY_ENV  # JSON object
    context: CallContext
    seconds: float  # time left in the run; the worker's CPU limit follows it


class SecretValue(Struct, kw_only=True, tag="secret"):
    """The executor's answer to a SecretRequest; None when the secret is not set."""

    value: str | None = None


class Ready(Struct, kw_only=True, tag="ready"):
    """The worker is confined and waits for calls."""

    pid: int
    uid: int


class SecretRequest(Struct, kw_only=True, tag="get_secret"):
    name: str


class Result(Struct, kw_only=True, tag="result"):
    output: bytes = b"null"  # JSON
    env: bytes | None = None  # JSON; None when the call left env unchanged
    logs: list[str] = field(default_factory=list)
    error: RunError | None = None
    loaded: bool = False  # the worker now holds this call's key
    need_source: bool = False  # the worker does not hold the key: send the source
    retire: bool = False  # the worker exits after this answer (out of memory, threads left)


ToWorker = Call | SecretValue
FromWorker = Ready | SecretRequest | Result

_encoder = msgspec.msgpack.Encoder()
to_worker = msgspec.msgpack.Decoder(ToWorker)
from_worker = msgspec.msgpack.Decoder(FromWorker)


def frame(message: ToWorker | FromWorker) -> bytearray:
    """The message with its length prefix, encoded in one buffer."""
    buffer = bytearray(HEADER.size)
    _encoder.encode_into(message, buffer, HEADER.size)
    HEADER.pack_into(buffer, 0, len(buffer) - HEADER.size)
    return buffer
