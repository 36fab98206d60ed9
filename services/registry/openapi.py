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


def _schema_safe(type_: type[Any]) -> type[Any]:
    """``type_``, or for a Struct with a ``Raw`` default (``input: Raw = NULL``), which msgspec
    cannot write into a schema, a copy of the same name and fields where those default to null."""
    if not (isinstance(type_, type) and issubclass(type_, msgspec.Struct)):
        return type_
    fields = msgspec.structs.fields(type_)
    if not any(isinstance(f.default, msgspec.Raw) for f in fields):
        return type_
    copied: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for f in fields:
        if isinstance(f.default, msgspec.Raw):
            copied.append((f.name, Any, None))
        elif f.default is not msgspec.NODEFAULT:
            copied.append((f.name, f.type, f.default))
        elif f.default_factory is not msgspec.NODEFAULT:
            copied.append((f.name, f.type, msgspec.field(default_factory=f.default_factory)))
        else:
            copied.append((f.name, f.type))
    config = type_.__struct_config__
    copy = msgspec.defstruct(
        type_.__name__,
        copied,
        kw_only=True,
        forbid_unknown_fields=config.forbid_unknown_fields,
        module=type_.__module__,
    )
    copy.__doc__ = type_.__doc__
    return copy


def _ref(type_: type[Any]) -> dict[str, Any]:
    _documented.add(_schema_safe(type_))
    return {"$ref": _REF.format(name=type_.__name__)}


def _json(type_: type[Any]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(type_)}}


def doc(
    *,
    body: type[Any] | None = None,
    answer: type[Any] | None = None,
    status: int = 200,
    error: type[Any] = ErrorResponse,
) -> dict[str, Any]:
    """``openapi_extra`` for a route whose request body and answer are msgspec Structs
    (``error``: the shape of its error answers)."""
    failure = {"description": "Error", "content": _json(error)}
    extra: dict[str, Any] = {"responses": {"4XX": failure, "422": failure}}
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
