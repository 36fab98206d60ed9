"""Wiring: the FastAPI app and its lifespan (NATS, index views, the results subscription)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from services.common.bus import index_bucket, nats_connection
from services.common.ids import new_id
from services.common.index import IndexView
from services.common.wire import Wire
from services.gateway.auth import Access
from services.gateway.errors import install_error_handlers
from services.gateway.invoke import Invoker
from services.gateway.poll import Poller
from services.gateway.results import Results
from services.gateway.routes import ROUTES, FastPath, Gateway
from shared.schemas import ApiKeyEntry, ViewEntry, WorkletHead
from shared.settings import GatewaySettings

log = logging.getLogger(__name__)


def create_app(settings: GatewaySettings) -> FastPath:
    gateway_id = new_id()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            nc = await stack.enter_async_context(nats_connection(settings, f"gateway-{gateway_id}"))
            kv = await index_bucket(nc.jetstream(), settings)
            keys = IndexView(kv, "key.>", ApiKeyEntry)
            heads = IndexView(kv, "worklet.>", WorkletHead)
            views = IndexView(kv, "view.>", ViewEntry)
            for index in (keys, heads, views):
                stack.push_async_callback(index.stop)
                await index.start()
            results = Results(nc, settings.names.results(gateway_id))
            stack.push_async_callback(results.stop)
            await results.start()
            wire = Wire(nc)
            stack.push_async_callback(wire.stop)
            await wire.start()
            app.state.gateway = Gateway(
                nc=nc,
                access=Access(keys, heads, views),
                invoker=Invoker(nc, wire, settings, results),
                poller=Poller(nc, settings),
                max_body_bytes=settings.max_body_bytes,
            )
            log.info("gateway %s ready on %s:%d", gateway_id, settings.host, settings.port)
            yield
            log.info("gateway %s stopping", gateway_id)

    app = FastAPI(
        title="Worklets gateway",
        lifespan=lifespan,
        routes=ROUTES,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # No OpenTelemetry provider is configured; skip the per-request checks.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    return FastPath(app, cors=bool(settings.cors_origins))
