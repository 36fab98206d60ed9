"""OpenAPI documentation of msgspec bodies (FastAPI only knows pydantic models).

Routes declare their body and answer with ``doc(...)``; ``install_openapi`` adds the msgspec
JSON schemas of every declared type to ``components.schemas``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from shared.errors import ErrorResponse

_REF = "#/components/schemas/{name}"
_documented: set[type[Any]] = {ErrorResponse}


def _ref(type_: type[Any]) -> dict[str, Any]:
    _documented.add(type_)
    return {"$ref": _REF.format(name=type_.__name__)}


def _json(type_: type[Any]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(type_)}}


def doc(
    *, body: type[Any] | None = None, answer: type[Any] | None = None, status: int = 200
) -> dict[str, Any]:
    """``openapi_extra`` for a route whose request body and answer are msgspec Structs."""
    error = {"description": "Error", "content": _json(ErrorResponse)}
    extra: dict[str, Any] = {"responses": {"4XX": error, "422": error}}
    if body is not None:
        extra["requestBody"] = {"required": True, "content": _json(body)}
    if answer is not None:
        extra["responses"][str(status)] = {"description": "Success", "content": _json(answer)}
    return extra


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            _, components = msgspec.json.schema_components(
                sorted(_documented, key=lambda t: t.__name__), ref_template=_REF
            )
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):  # errors are ErrorResponse
                schemas.pop(unused, None)
            schemas.update(components)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
