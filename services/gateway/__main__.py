"""``python -m services.gateway``: serve the gateway with uvicorn (uvloop, httptools)."""

from __future__ import annotations

import uvicorn

from services.common.logs import setup_logging
from services.gateway.app import create_app
from shared.settings import GatewaySettings

SHUTDOWN_GRACE = 10  # seconds in-flight requests get after SIGTERM


def main() -> None:
    settings = GatewaySettings()
    setup_logging(settings.log_level, "gateway")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,  # nothing reads the client address or scheme
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
    )


if __name__ == "__main__":
    main()
