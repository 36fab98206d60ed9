"""OpenAPI documentation of msgspec bodies (FastAPI only knows pydantic models).

Routes declare their body and answer with ``doc(...)``; ``install_openapi`` adds the msgspec
JSON schemas of every declared type to ``components.schemas``.
"""

from __future__ import annotations

import functools
import operator
import types
import typing
from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from shared.errors import ErrorResponse

_REF = "#/components/schemas/{name}"
_documented: set[type[Any]] = {ErrorResponse}


def _schema_safe(type_: Any) -> Any:
    """``type_``, or where a Struct in it has a ``Raw`` default (``input: Raw = NULL``), which
    msgspec cannot write into a schema, a copy of the same name and fields where those default
    to null. Structs nested in fields (``components: list[Component]``) are copied likewise."""
    if isinstance(type_, type) and issubclass(type_, msgspec.Struct):
        return _safe_struct(type_)
    args = typing.get_args(type_)
    origin = typing.get_origin(type_)
    if origin is None or origin is typing.Literal or not args:
        return type_
    safe = tuple(_schema_safe(arg) for arg in args)
    if all(a is b for a, b in zip(safe, args, strict=True)):
        return type_
    if origin in (typing.Union, types.UnionType):
        return functools.reduce(operator.or_, safe)
    return origin[safe]


_safe_structs: dict[type[Any], type[Any]] = {}


def _safe_struct(type_: type[msgspec.Struct]) -> type[Any]:
    if type_ in _safe_structs:
        return _safe_structs[type_]
    _safe_structs[type_] = type_  # a recursive type refers to itself meanwhile
    fields = msgspec.structs.fields(type_)
    copied: list[tuple[str, Any, Any]] = []
    changed = False
    for f in fields:
        field_type = _schema_safe(f.type)
        changed = changed or field_type is not f.type
        if isinstance(f.default, msgspec.Raw):
            changed = True
            spec = msgspec.field(default=None, name=f.encode_name)
            copied.append((f.name, Any, spec))
        elif f.default is not msgspec.NODEFAULT:
            spec = msgspec.field(default=f.default, name=f.encode_name)
            copied.append((f.name, field_type, spec))
        elif f.default_factory is not msgspec.NODEFAULT:
            spec = msgspec.field(default_factory=f.default_factory, name=f.encode_name)
            copied.append((f.name, field_type, spec))
        else:
            copied.append((f.name, field_type, msgspec.field(name=f.encode_name)))
    if not changed:
        return type_
    config = type_.__struct_config__
    copy = msgspec.defstruct(
        type_.__name__,
        copied,
        kw_only=True,
        forbid_unknown_fields=config.forbid_unknown_fields,
        omit_defaults=config.omit_defaults,
        tag=config.tag,
        tag_field=config.tag_field,
        module=type_.__module__,
    )
    copy.__doc__ = type_.__doc__
    _safe_structs[type_] = copy
    return copy


def _ref(type_: type[Any]) -> dict[str, Any]:
    _documented.add(_schema_safe(type_))
    return {"$ref": _REF.format(name=type_.__name__)}


def _json(type_: type[Any] | tuple[type[Any], ...]) -> dict[str, Any]:
    if isinstance(type_, tuple):
        return {"application/json": {"schema": {"oneOf": [_ref(t) for t in type_]}}}
    return {"application/json": {"schema": _ref(type_)}}


def doc(
    *,
    body: type[Any] | None = None,
    answer: type[Any] | tuple[type[Any], ...] | None = None,
    status: int = 200,
    error: type[Any] = ErrorResponse,
) -> dict[str, Any]:
    """``openapi_extra`` for a route whose request body and answer are msgspec Structs
    (``answer``: a tuple for one of several; ``error``: the shape of its error answers)."""
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
            _errors_are_error_responses(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _errors_are_error_responses(schema: dict[str, Any]) -> None:
    """FastAPI's own 422 answers (routes without ``doc``) name ``HTTPValidationError``, which
    is removed above: they are ``ErrorResponse`` too, like every error of the registry."""
    validation = _REF.format(name="HTTPValidationError")
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for answer in operation.get("responses", {}).values():
                for content in answer.get("content", {}).values():
                    if content.get("schema", {}).get("$ref") == validation:
                        content["schema"] = {"$ref": _REF.format(name=ErrorResponse.__name__)}
