"""Published views: the page ``/views/{app}/{view}`` and its assets under ``/static/``.

The page is ``web/view/index.html`` for any well-formed ids, without a key: it signs in by
itself (an API key from ``#key=...`` or a form) and then reads the view's definition from
``GET /applications/{app}/views/{view}``. ``/static/<file>`` is a file of ``web/common/`` (the
view runtime, shared with the console), else of ``web/view/``. Files are read at each request,
with ``Cache-Control: no-cache`` and an ETag; a path that could leave its folder is a 404.
"""

from __future__ import annotations

from fastapi import Request, Response

import web
from services.gateway.auth import check_ids
from services.gateway.errors import GatewayError
from shared.errors import ErrorCode

STATIC_SECTIONS: tuple[web.Section, ...] = ("common", "view")


def _serve(request: Request, sections: tuple[web.Section, ...], path: str) -> Response:
    for section in sections:
        found = web.asset(section, path)
        if found is not None:
            break
    else:
        raise GatewayError(ErrorCode.NOT_FOUND, "No such route")
    headers = web.headers(found)
    if web.not_modified(found, request.headers.get("if-none-match")):
        del headers["Content-Type"]
        return Response(status_code=304, headers=headers)
    return Response(found.body, headers=headers)


async def view_page(request: Request) -> Response:
    """``GET /views/{app}/{view}``"""
    check_ids(request.path_params["app"], request.path_params["view"])
    return _serve(request, ("view",), "index.html")


async def static_asset(request: Request) -> Response:
    """``GET /static/{path}``"""
    return _serve(request, STATIC_SECTIONS, request.path_params["path"])
