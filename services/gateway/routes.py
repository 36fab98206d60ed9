"""The HTTP routes: invoke, poll (GET or POST), view definitions, view pages and health.

The invoke and poll answers are made by ``invoke_answer`` and ``poll_answer`` from plain values
(ids, the Authorization header, a body reader), encoded by msgspec. ``FastPath`` serves them
straight from ASGI, in front of the FastAPI app: Starlette's middleware stack, routing and
``Request`` cost about as much as the rest of a background invoke. Everything else (health,
unknown routes and methods, HEAD, CORS requests, views and their pages) goes to the FastAPI
app, whose Starlette routes below answer invoke and poll with the same functions.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request, Response
from nats.aio.client import Client
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from services.gateway.answers import JSON, Scheduled, encode, run_answer
from services.gateway.auth import Access, check_ids
from services.gateway.body import decode_invoke_body, read_body
from services.gateway.errors import GatewayError, error_body, error_response
from services.gateway.invoke import Invoker
from services.gateway.pages import static_asset, view_page
from services.gateway.poll import Poller
from shared.errors import ErrorCode

log = logging.getLogger(__name__)

_HEALTHY = b'{"status":"ok"}'

Answer = tuple[int, bytes]  # status, JSON body


@dataclass(frozen=True, slots=True)
class Gateway:
    """What the routes need, built by the lifespan once NATS is connected."""

    nc: Client
    access: Access
    invoker: Invoker
    poller: Poller
    max_body_bytes: int


async def invoke_answer(
    gw: Gateway,
    app: str,
    worklet: str,
    authorization: str | None,
    body: Callable[[], Awaitable[bytes]],
) -> Answer:
    """``POST /applications/{app}/worklets/{worklet}/invoke``"""
    check_ids(app, worklet)
    await gw.access.check_key(authorization, app)
    head = await gw.access.worklet(app, worklet)
    invoke = decode_invoke_body(await body())
    if invoke.async_ or head.settings.background:
        run_id = await gw.invoker.background(head, invoke)
        return 202, encode(Scheduled(scheduled_worklet_run_id=run_id))
    event = await gw.invoker.synchronous(head, invoke)
    return 200, encode(run_answer(event, invoke.trace))


async def poll_answer(
    gw: Gateway, app: str, worklet: str, run_id: str, authorization: str | None
) -> Answer:
    """``GET|POST /applications/{app}/worklets/{worklet}/{run_id}``, ``run_id`` not "invoke"."""
    check_ids(app, worklet, run_id)
    await gw.access.check_key(authorization, app)
    return 200, encode(await gw.poller.poll(app, worklet, run_id))


# ------------------------------------------------------------------------- Starlette routes


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def invoke(request: Request) -> Response:
    gw = _gateway(request)
    status, body = await invoke_answer(
        gw,
        request.path_params["app"],
        request.path_params["worklet"],
        request.headers.get("authorization"),
        lambda: read_body(
            request.receive, request.headers.get("content-length"), gw.max_body_bytes
        ),
    )
    return Response(body, status, media_type=JSON)


async def poll(request: Request) -> Response:
    params = request.path_params
    if params["run_id"] == "invoke":  # a GET of the invoke route
        raise GatewayError(
            ErrorCode.METHOD_NOT_ALLOWED,
            f"Method {request.method} is not allowed on {request.url.path}",
            headers={"Allow": "POST"},
        )
    status, body = await poll_answer(
        _gateway(request),
        params["app"],
        params["worklet"],
        params["run_id"],
        request.headers.get("authorization"),
    )
    return Response(body, status, media_type=JSON)


async def view_definition(request: Request) -> Response:
    """``GET /applications/{app}/views/{view}``: the view's definition (worklet references
    resolved to ids) for any key of the application, whatever its role."""
    app, view = request.path_params["app"], request.path_params["view"]
    check_ids(app, view)
    gw = _gateway(request)
    await gw.access.check_key(request.headers.get("authorization"), app)
    entry = await gw.access.view(app, view)
    return Response(
        encode(entry.definition), media_type=JSON, headers={"Cache-Control": "no-cache"}
    )


async def healthz(request: Request) -> Response:
    """``GET /healthz``: 200 while connected to NATS."""
    if not _gateway(request).nc.is_connected:
        return error_response(ErrorCode.UNAVAILABLE, "Not connected to NATS")
    return Response(_HEALTHY, media_type=JSON)


ROUTES: list[BaseRoute] = [
    Route("/applications/{app}/worklets/{worklet}/invoke", invoke, methods=["POST"]),
    Route("/applications/{app}/worklets/{worklet}/{run_id}", poll, methods=["GET", "POST"]),
    Route("/applications/{app}/views/{view}", view_definition, methods=["GET"]),
    Route("/views/{app}/{view}", view_page, methods=["GET"]),
    Route("/static/{path:path}", static_asset, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
]


# ------------------------------------------------------------------------- straight from ASGI

_JSON_HEADER = (b"content-type", JSON.encode())
_INTERNAL = (500, error_body(ErrorCode.INTERNAL, "Internal error"))


class FastPath:
    """The ASGI app: invoke and poll answered here, everything else by ``api`` (FastAPI).

    Only an exact match is taken, the rest is left to the routes above: a POST to
    ``/applications/{app}/worklets/{worklet}/invoke``, a GET or POST to
    ``/applications/{app}/worklets/{worklet}/{run_id}`` with ``run_id`` not ``invoke``, and,
    when CORS is configured, only requests without an ``Origin`` header.
    """

    def __init__(self, api: FastAPI, cors: bool) -> None:
        self.api = api
        self._cors = cors
        self._gateway: Gateway | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "GET"):
            gw = self._gateway
            if gw is None:
                gw = self._gateway = getattr(self.api.state, "gateway", None)
            parts = scope["path"].split("/")
            if (
                gw is not None
                and len(parts) == 6
                and parts[1] == "applications"
                and parts[3] == "worklets"
                and not parts[0]
                and parts[2]
                and parts[4]
                and parts[5]
                and not scope.get("root_path")
                and (parts[5] != "invoke" or scope["method"] == "POST")
                and await self._serve(gw, scope, receive, send, parts)
            ):
                return
        await self.api(scope, receive, send)

    async def _serve(
        self, gw: Gateway, scope: Scope, receive: Receive, send: Send, parts: list[str]
    ) -> bool:
        authorization = declared = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is None:
                    authorization = value.decode("latin-1")
            elif name == b"content-length":
                if declared is None:
                    declared = value.decode("latin-1")
            elif name == b"origin" and self._cors:
                return False  # CORS answers are the middleware's
        extra: list[tuple[bytes, bytes]] = []
        try:
            if parts[5] == "invoke":
                status, body = await invoke_answer(
                    gw,
                    parts[2],
                    parts[4],
                    authorization,
                    lambda: read_body(receive, declared, gw.max_body_bytes),
                )
            else:
                status, body = await poll_answer(gw, parts[2], parts[4], parts[5], authorization)
        except GatewayError as err:
            status, body = err.status, error_body(err.code, err.message, err.run_id)
            if err.headers:
                extra = [
                    (k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in err.headers.items()
                ]
        except Exception:
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            status, body = _INTERNAL
        headers = [_JSON_HEADER, (b"content-length", b"%d" % len(body)), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True
