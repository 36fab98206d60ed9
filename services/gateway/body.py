"""Reading and decoding an invoke body: size-limited, strict, with messages that say where."""

from __future__ import annotations

import msgspec
from msgspec import Raw, Struct, field
from starlette.types import Receive

from services.gateway.errors import GatewayError
from shared.errors import ErrorCode
from shared.subjects import is_id


class InvokeBody(Struct, kw_only=True, forbid_unknown_fields=True):
    worklet_input: Raw  # kept as the caller's JSON text, never re-encoded
    async_: bool = field(name="async", default=False)
    trace: bool = False
    view_id: str | None = None  # set by a view's runtime: the run's trigger is `view`


_decoder = msgspec.json.Decoder(InvokeBody)


def _too_large(limit: int) -> GatewayError:
    return GatewayError(
        ErrorCode.PAYLOAD_TOO_LARGE, f"Request body is larger than the limit of {limit} bytes"
    )


async def read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The whole body, refused as soon as it is known to exceed ``limit`` bytes.

    ``receive`` is the ASGI receive callable, ``declared`` the Content-Length header if any.
    """
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise GatewayError(ErrorCode.INVALID_REQUEST, "The client went away mid-body")
        chunk: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        size += len(chunk)
        if size > limit:  # a chunked body, or one longer than it said
            raise _too_large(limit)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decode_invoke_body(raw: bytes) -> InvokeBody:
    if not raw.strip():
        raise GatewayError(
            ErrorCode.INVALID_REQUEST, 'The body is empty; send {"worklet_input": ...}'
        )
    try:
        body = _decoder.decode(raw)
    except msgspec.ValidationError as err:  # JSON of the wrong shape; the message has the path
        raise GatewayError(ErrorCode.INVALID_REQUEST, str(err)) from None
    except msgspec.DecodeError as err:
        raise GatewayError(
            ErrorCode.INVALID_REQUEST, f"The body is not valid JSON: {err}"
        ) from None
    if body.view_id is not None and not is_id(body.view_id):
        raise GatewayError(
            ErrorCode.INVALID_REQUEST,
            "Expected a view id (letters, digits, '_' and '-', at most 64) - at `$.view_id`",
        )
    return body
