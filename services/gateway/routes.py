"""The HTTP routes: invoke, poll (GET or POST) and health.

They are plain Starlette routes on the FastAPI app: a handler takes the raw ``Request`` and
answers a ``Response`` encoded by msgspec, which skips FastAPI's parameter validation and
serialisation (about 0.1 ms a request, on a path whose whole budget is a few ms).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request, Response
from nats.aio.client import Client
from starlette.routing import BaseRoute, Route

from services.gateway.answers import JSON, Scheduled, json_response, run_answer
from services.gateway.auth import Access, check_ids
from services.gateway.body import decode_invoke_body, read_body
from services.gateway.errors import GatewayError, error_response
from services.gateway.invoke import Invoker
from services.gateway.poll import Poller
from shared.errors import ErrorCode

_HEALTHY = b'{"status":"ok"}'


@dataclass(frozen=True, slots=True)
class Gateway:
    """What the routes need, built by the lifespan once NATS is connected."""

    nc: Client
    access: Access
    invoker: Invoker
    poller: Poller
    max_body_bytes: int


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def invoke(request: Request) -> Response:
    """``POST /applications/{app}/worklets/{worklet}/invoke``"""
    gw = _gateway(request)
    app, worklet = request.path_params["app"], request.path_params["worklet"]
    check_ids(app, worklet)
    await gw.access.check_key(request.headers.get("authorization"), app)
    head = await gw.access.worklet(app, worklet)
    body = decode_invoke_body(await read_body(request, gw.max_body_bytes))
    if body.async_ or head.settings.background:
        run_id = await gw.invoker.background(head, body)
        return json_response(Scheduled(scheduled_worklet_run_id=run_id), 202)
    event = await gw.invoker.synchronous(head, body)
    return json_response(run_answer(event, body.trace))


async def poll(request: Request) -> Response:
    """``GET|POST /applications/{app}/worklets/{worklet}/{run_id}``"""
    gw = _gateway(request)
    params = request.path_params
    app, worklet, run_id = params["app"], params["worklet"], params["run_id"]
    if run_id == "invoke":  # a GET of the invoke route
        raise GatewayError(
            ErrorCode.METHOD_NOT_ALLOWED,
            f"Method {request.method} is not allowed on {request.url.path}",
            headers={"Allow": "POST"},
        )
    check_ids(app, worklet, run_id)
    await gw.access.check_key(request.headers.get("authorization"), app)
    return json_response(await gw.poller.poll(app, worklet, run_id))


async def healthz(request: Request) -> Response:
    """``GET /healthz``: 200 while connected to NATS."""
    if not _gateway(request).nc.is_connected:
        return error_response(ErrorCode.UNAVAILABLE, "Not connected to NATS")
    return Response(_HEALTHY, media_type=JSON)


ROUTES: list[BaseRoute] = [
    Route("/applications/{app}/worklets/{worklet}/invoke", invoke, methods=["POST"]),
    Route("/applications/{app}/worklets/{worklet}/{run_id}", poll, methods=["GET", "POST"]),
    Route("/healthz", healthz, methods=["GET"]),
]
