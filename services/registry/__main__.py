"""``python -m services.registry``: serve the registry API with uvicorn."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from services.common.logs import setup_logging
from services.registry.app import create_app
from shared.settings import RegistrySettings


def main() -> None:
    try:
        settings = RegistrySettings()  # admin_token comes from WORKLETS_ADMIN_TOKEN
    except ValidationError as err:
        sys.exit(f"registry: invalid settings (WORKLETS_* environment variables):\n{err}")
    setup_logging(settings.log_level, "registry")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
