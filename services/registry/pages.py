"""What the registry serves to browsers: the console, its shared assets, and the API docs.

- ``/console/`` is ``web/console/index.html``, ``/console/<file>`` the files of ``web/console/``,
  ``/console/config.json`` ``{"gateway_url": WORKLETS_GATEWAY_PUBLIC_URL}``;
- ``/static/<file>`` the files of ``web/common/`` (the console's live preview runs the view
  runtime);
- ``/docs`` (Swagger UI) and ``/redoc`` with their scripts and styles served from the
  ``fastapi-offline`` package, never from a CDN: no machine running the registry needs the
  internet to read its API.

Files are read at each request (they are small, and an edited file shows at the next load),
answered with ``Cache-Control: no-cache`` and an ETag. A path that could leave its folder
(``..``, hidden files, backslashes) is a 404, like a missing file.
"""

from __future__ import annotations

import functools
from importlib.resources import files

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import RedirectResponse, Response

import web
from services.registry.bodies import reply
from services.registry.errors import NotFound
from shared.settings import RegistrySettings

DOCS_ASSETS = "/docs/assets"
_DOCS_FILES = files("fastapi_offline").joinpath("static")
_DOCS_CONTENT_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}

router = APIRouter(include_in_schema=False)
_METHODS = ["GET", "HEAD"]


def serve(request: Request, section: web.Section, path: str) -> Response:
    """The file ``path`` of ``web/<section>/``, or NotFound."""
    found = web.asset(section, path)
    if found is None:
        raise NotFound(f"no such path: {request.url.path}")
    headers = web.headers(found)
    if web.not_modified(found, request.headers.get("if-none-match")):
        del headers["Content-Type"]
        return Response(status_code=304, headers=headers)
    return Response(found.body, headers=headers)


@router.api_route("/console", methods=_METHODS)
async def console_redirect() -> Response:
    return RedirectResponse("/console/", status_code=308)


@router.api_route("/console/", methods=_METHODS)
async def console_index(request: Request) -> Response:
    return serve(request, "console", "index.html")


@router.api_route("/console/{path:path}", methods=_METHODS)
async def console_asset(path: str, request: Request) -> Response:
    return serve(request, "console", path)


@router.api_route("/static/{path:path}", methods=_METHODS)
async def common_asset(path: str, request: Request) -> Response:
    return serve(request, "common", path)


@functools.cache
def _docs_file(name: str) -> bytes:
    """One of the few files of ``_DOCS_CONTENT_TYPES``, read once."""
    return _DOCS_FILES.joinpath(name).read_bytes()


@router.api_route(DOCS_ASSETS + "/{name}", methods=_METHODS)
async def docs_asset(name: str) -> Response:
    content_type = _DOCS_CONTENT_TYPES.get(name)
    if content_type is None:
        raise NotFound(f"no such path: {DOCS_ASSETS}/{name}")
    body = _docs_file(name)
    cache = {"Cache-Control": "public, max-age=86400"}  # they change with the package only
    return Response(body, media_type=content_type, headers=cache)


def install_pages(app: FastAPI, settings: RegistrySettings) -> None:
    """The console's routes, and ``/docs`` and ``/redoc`` on local assets (the app is made
    with ``docs_url=None, redoc_url=None``)."""
    config = {"gateway_url": settings.gateway_public_url.rstrip("/")}

    @app.api_route("/console/config.json", methods=_METHODS, include_in_schema=False)
    async def console_config() -> Response:
        """Where the console finds the gateway (it invokes worklets there, cross-origin)."""
        answer = reply(config)
        answer.headers["Cache-Control"] = "no-cache"
        return answer

    app.include_router(router)  # after config.json, which /console/{path} would match too
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> Response:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> Response:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )
