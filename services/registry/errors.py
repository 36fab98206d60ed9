"""The registry's exceptions, and the one place where any error becomes an HTTP answer.

Every answer that is not a success is ``{"success": false, "error": {"code", "message"}}`` with
the status of ``shared.errors.HTTP_STATUS``: the registry's own errors, FastAPI's validation
errors, Starlette's 404/405, and infrastructure failures (503) alike. Definition errors add
``block`` (the block at fault), schedule errors ``field`` (the field of the body at fault), view
errors ``component`` (the id of the view component at fault).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from msgspec import Struct
from nats.errors import Error as NatsError
from pymongo.errors import ConnectionFailure, PyMongoError
from starlette.exceptions import HTTPException

from shared.errors import HTTP_STATUS, ErrorCode, ErrorDetail
from shared.schemas import encoder

log = logging.getLogger(__name__)


class RegistryError(Exception):
    """Root of the registry's errors; ``code`` decides the HTTP status."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        block: str | None = None,
        field: str | None = None,
        component: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.block = block
        self.field = field
        self.component = component


class Unauthorized(RegistryError):
    code = ErrorCode.UNAUTHORIZED


class Forbidden(RegistryError):
    code = ErrorCode.FORBIDDEN


class NotFound(RegistryError):
    code = ErrorCode.NOT_FOUND


class Conflict(RegistryError):
    code = ErrorCode.CONFLICT


class InvalidRequest(RegistryError):
    code = ErrorCode.INVALID_REQUEST


class InvalidDefinition(RegistryError):
    code = ErrorCode.INVALID_DEFINITION


class InvalidSchedule(InvalidRequest):
    """A schedule that cannot be used; ``field`` names the part of the body at fault."""


class InvalidView(InvalidDefinition):
    """A view definition that cannot be used; ``component`` names the component at fault."""


class PayloadTooLarge(RegistryError):
    code = ErrorCode.PAYLOAD_TOO_LARGE


class Unavailable(RegistryError):
    code = ErrorCode.UNAVAILABLE


class FieldErrorDetail(ErrorDetail, kw_only=True, omit_defaults=True):
    field: str | None = None  # schedules: the field of the body at fault (cron, every, at...)
    component: str | None = None  # views: the id of the component at fault


class FieldErrorResponse(Struct, kw_only=True):
    """The error answer of the schedule routes: ``error.field`` names the field at fault."""

    error: FieldErrorDetail
    success: bool = False


class ComponentErrorResponse(Struct, kw_only=True):
    """The error answer of the view routes: ``error.component`` names the component at fault."""

    error: FieldErrorDetail
    success: bool = False


_STATUS_CODES = {
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    503: ErrorCode.UNAVAILABLE,
    504: ErrorCode.TIMEOUT,
}


def error_response(
    code: ErrorCode,
    message: str,
    *,
    block: str | None = None,
    field: str | None = None,
    component: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    # ErrorResponse omits defaults, and `success: false` must always be there.
    detail = FieldErrorDetail(
        code=code, message=message, block=block, field=field, component=component
    )
    body = {"success": False, "error": detail}
    return Response(
        encoder.encode(body),
        status_code=HTTP_STATUS[code],
        media_type="application/json",
        headers=headers,
    )


def _location(loc: tuple[object, ...] | list[object]) -> str:
    return ".".join(str(part) for part in loc)


async def _registry_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    headers = (
        {"WWW-Authenticate": "Bearer, Api-Key"} if exc.code is ErrorCode.UNAUTHORIZED else None
    )
    return error_response(
        exc.code,
        exc.message,
        block=exc.block,
        field=exc.field,
        component=exc.component,
        headers=headers,
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [f"{e['msg']} - at `{_location(e['loc'])}`" for e in exc.errors()]
    return error_response(ErrorCode.INVALID_REQUEST, "; ".join(problems) or "invalid request")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _STATUS_CODES.get(exc.status_code)
    if code is None:
        code = ErrorCode.INVALID_REQUEST if exc.status_code < 500 else ErrorCode.INTERNAL
    if code is ErrorCode.NOT_FOUND:
        message = f"no such path: {request.url.path}"
    elif code is ErrorCode.METHOD_NOT_ALLOWED:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(code, message, headers=exc.headers)


async def _infrastructure_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, PyMongoError) and not isinstance(exc, ConnectionFailure):
        log.exception("MongoDB error on %s %s", request.method, request.url.path)
        return error_response(ErrorCode.INTERNAL, "internal error")
    log.warning("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
    return error_response(ErrorCode.UNAVAILABLE, "storage or messaging is unavailable; retry")


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(ErrorCode.INTERNAL, "internal error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RegistryError, _registry_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(PyMongoError, _infrastructure_error)
    app.add_exception_handler(NatsError, _infrastructure_error)
    app.add_exception_handler(TimeoutError, _infrastructure_error)
    app.add_exception_handler(Exception, _unexpected_error)
