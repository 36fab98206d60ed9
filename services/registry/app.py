"""The registry's FastAPI application: MongoDB, NATS, the read model, the event persister and
the ``runs.get`` responder, started and stopped by one lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import Response
from pymongo import AsyncMongoClient

from services.common.bus import index_bucket, nats_connection
from services.common.sealing import Sealer
from services.registry.bodies import reply
from services.registry.context import Registry
from services.registry.errors import Unavailable, install_error_handlers
from services.registry.lookup import RunLookupResponder
from services.registry.openapi import install_openapi
from services.registry.pages import install_pages
from services.registry.persist import Persister
from services.registry.readmodel import ReadModel
from services.registry.routes import (
    applications,
    keys,
    me,
    runs,
    schedules,
    secrets,
    views,
    worklets,
)
from services.registry.store import Document, Store
from shared.settings import RegistrySettings

log = logging.getLogger(__name__)

MONGO_TIMEOUT_MS = 10_000  # server selection: how long a request waits for MongoDB


def create_app(settings: RegistrySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            mongo: AsyncMongoClient[Document] = AsyncMongoClient(
                settings.mongo_url, serverSelectionTimeoutMS=MONGO_TIMEOUT_MS, appname="registry"
            )
            stack.push_async_callback(mongo.close)
            store = Store(mongo[settings.mongo_db])
            await store.create_indexes()
            sealer = Sealer(settings.secrets_key, settings.secrets_previous_keys)
            resealed, unreadable = await store.reseal_secrets(sealer)
            if resealed:
                log.info("sealed %d secrets again under the current key", resealed)
            if unreadable:
                log.error(
                    "%d secrets open under no key given (WORKLETS_SECRETS_KEY, "
                    "WORKLETS_SECRETS_PREVIOUS_KEYS): runs using them fail SecretUnreadable",
                    unreadable,
                )
            nc = await stack.enter_async_context(nats_connection(settings, "registry"))
            readmodel = ReadModel(await index_bucket(nc.jetstream(), settings), nc, settings.names)
            await readmodel.rebuild(store)
            await stack.enter_async_context(Persister(nc, store, settings).running())
            await stack.enter_async_context(RunLookupResponder(nc, store, settings.names).serving())
            app.state.registry = Registry(
                settings=settings, store=store, readmodel=readmodel, sealer=sealer
            )
            log.info(
                "registry ready on %s:%d (prefix %s)", settings.host, settings.port, settings.prefix
            )
            try:
                yield
            finally:
                app.state.registry = None
                log.info("registry stopping")

    app = FastAPI(
        title="Worklets registry",
        version="1",
        description="Applications, API keys, worklets, schedules, views, secrets and runs. "
        "The console is at `/console/`.",
        lifespan=lifespan,
        docs_url=None,  # served by install_pages from local files, not from a CDN
        redoc_url=None,
    )
    app.state.registry = None
    install_error_handlers(app)
    for router in (applications, keys, worklets, schedules, views, secrets, runs, me):
        app.include_router(router.router)
    install_pages(app, settings)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> Response:
        """200 once connected to NATS and MongoDB and the read model is rebuilt."""
        if app.state.registry is None:
            raise Unavailable("not ready")
        return reply({"status": "ok"})

    install_openapi(app)
    return app
