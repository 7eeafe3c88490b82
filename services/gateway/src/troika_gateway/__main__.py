"""Runs the gateway API: ``python -m troika_gateway`` (or ``troika-gateway``)."""

from __future__ import annotations

import uvicorn

from troika_gateway.app import create_app
from troika_gateway.settings import GatewaySettings
from troika_shared.logs import configure_logging


def main() -> None:
    """Serves the API until SIGTERM or SIGINT."""
    settings = GatewaySettings()
    configure_logging(service="gateway", level=settings.log_level, fmt=settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
