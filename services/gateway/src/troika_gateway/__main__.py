"""Runs the gateway API: ``python -m troika_gateway`` (or ``troika-gateway``)."""

from __future__ import annotations

import sys

import pydantic
import uvicorn

from troika_gateway.app import create_app
from troika_gateway.settings import GatewaySettings
from troika_shared import heap, tracing
from troika_shared.logs import configure_logging
from troika_shared.private import keep_private
from troika_shared.runner import instance_name

EXIT_CONFIG = 2
# An idle connection is kept open longer than the clients and proxies in front keep theirs
# (httpx 5 s; nginx's upstream connections and cloud load balancers 60 s): otherwise a request
# sent as the server closes the connection gets no answer.
KEEP_ALIVE_S = 75


def main() -> None:
    """Serves the API until SIGTERM or SIGINT."""
    try:
        settings = GatewaySettings()
        configure_logging(service="gateway", level=settings.log_level, fmt=settings.log_format)
        keep_private(settings.data_dir)
        stop_tracing = tracing.configure_tracing(
            "gateway", tracing.endpoint_from(settings.otel_endpoint), instance=instance_name()
        )
        app = create_app(settings)
        app.on_startup.append(heap.settle)  # once serving: what starting made is kept
    except (pydantic.ValidationError, ValueError) as exc:
        print(f"troika-gateway: the configuration is not usable:\n{exc}", file=sys.stderr)  # noqa: T201
        raise SystemExit(EXIT_CONFIG) from exc
    try:
        uvicorn.run(
            app,
            host=settings.gateway_host,
            port=settings.gateway_port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
            timeout_keep_alive=KEEP_ALIVE_S,
            ws_ping_interval=20,
            proxy_headers=True,
            forwarded_allow_ips=list(settings.trusted_proxies),
        )
    finally:
        stop_tracing()


if __name__ == "__main__":
    main()
