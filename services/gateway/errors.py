"""The gateway's one exception root, and the one place where errors become HTTP answers.

Every error, a client's mistake or the platform's, is JSON
``{"success": false, "error": {"code", "message"}}`` with the status of ``shared.errors``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException

from services.gateway.answers import JSON, ErrorAnswer, PublicErrorDetail, encode
from shared.errors import HTTP_STATUS, ErrorCode

log = logging.getLogger(__name__)


class GatewayError(Exception):
    """Anything the gateway answers with an error; ``run_id`` when the run can still be polled."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        run_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.run_id = run_id
        self.headers = headers

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.code]


def error_body(code: ErrorCode, message: str, run_id: str | None = None) -> bytes:
    answer = ErrorAnswer(error=PublicErrorDetail(code=code, message=message))
    if run_id is not None:
        answer.run_id = run_id
    return encode(answer)


def error_response(
    code: ErrorCode,
    message: str,
    run_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(error_body(code, message, run_id), HTTP_STATUS[code], headers, JSON)


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc.code, exc.message, exc.run_id, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    """What Starlette raises itself: no route matched, or the route has no such method."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(ErrorCode.NOT_FOUND, "No such route", headers=exc.headers)
    if exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
        return error_response(ErrorCode.METHOD_NOT_ALLOWED, message, headers=exc.headers)
    return error_response(ErrorCode.INVALID_REQUEST, str(exc.detail), headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Starlette re-raises it afterwards, so the server logs the traceback.
    log.error("unexpected %r on %s %s", exc, request.method, request.url.path)
    return error_response(ErrorCode.INTERNAL, "Internal error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
