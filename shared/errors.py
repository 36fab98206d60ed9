"""Error codes shared by every service, and the HTTP status each one maps to.

Client-facing errors are JSON ``{"success": false, "error": {"code", "message"}}``; each service
converts its exceptions to that shape in exactly one place.
"""

from __future__ import annotations

from enum import StrEnum

from msgspec import Struct


class ErrorCode(StrEnum):
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    INVALID_REQUEST = "invalid_request"
    INVALID_DEFINITION = "invalid_definition"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    CONFLICT = "conflict"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.INVALID_REQUEST: 422,
    ErrorCode.INVALID_DEFINITION: 422,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.CONFLICT: 409,
    ErrorCode.TIMEOUT: 504,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}


class RunErrorType(StrEnum):
    """``RunError.type`` values raised by the platform rather than by user code."""

    TIMEOUT = "Timeout"
    WORKER_CRASHED = "WorkerCrashed"
    MEMORY_LIMIT = "MemoryLimit"
    DEPTH_LIMIT = "DepthLimit"
    WORKLET_NOT_FOUND = "WorkletNotFound"
    INVALID_OUTPUT = "InvalidOutput"
    OUTPUT_TOO_LARGE = "OutputTooLarge"
    REDELIVERY_LIMIT = "RedeliveryLimit"
    INVALID_CONDITION = "InvalidCondition"
    INVALID_DEFINITION = "InvalidDefinition"  # a stored definition the executor cannot run
    FUNCTION_NOT_FOUND = "FunctionNotFound"  # a code block without the function it names
    OVERLAP_SKIPPED = "OverlapSkipped"  # a schedule slot skipped: its previous run still ran
    SECRET_UNREADABLE = "SecretUnreadable"  # sealed under another WORKLETS_SECRETS_KEY


class ErrorDetail(Struct, kw_only=True, omit_defaults=True):
    code: str
    message: str
    block: str | None = None  # definition errors: the block at fault


class ErrorResponse(Struct, kw_only=True):
    error: ErrorDetail
    success: bool = False
