"""``/metrics`` for Prometheus, for the operator only: with ``TROIKA_METRICS_TOKEN`` set, the
scraper sends it as a bearer token; without it, only a request from this machine (loopback)
is answered. The counters say who uses what and how often — not for everyone to read."""

from __future__ import annotations

import hmac
import ipaddress
from typing import TYPE_CHECKING, Any

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.plugins.prometheus import PrometheusController
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from troika_gateway.errors import Unauthorized
from troika_gateway.gauges import refresh

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

__all__ = ["MetricsController", "operator_only"]


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def operator_only(connection: ASGIConnection, _: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    """A guard: the operator's bearer token, or (with none set) a request from this machine.

    Raises:
        Unauthorized: Neither.
    """
    token = connection.app.state.settings.metrics_token
    if token is not None:
        given = connection.headers.get("authorization", "").encode()
        if hmac.compare_digest(given, f"Bearer {token.get_secret_value()}".encode()):
            return
        raise Unauthorized("the metrics need the operator's token (TROIKA_METRICS_TOKEN)")
    if connection.client is not None and _loopback(connection.client.host):
        return
    raise Unauthorized("the metrics are read from this machine, or with TROIKA_METRICS_TOKEN")


class MetricsController(PrometheusController):
    """Prometheus's text format at ``/metrics``, behind :func:`operator_only`: the gateway's
    requests, and what the whole system holds now (:mod:`troika_gateway.gauges`)."""

    guards = [operator_only]  # noqa: RUF012 - Litestar's own class attribute

    @get()
    async def get(self, request: Request[Any, Any, State]) -> Response[bytes]:
        """The metrics, with the system's gauges read now."""
        await refresh(request.app.state)
        return Response(
            generate_latest(REGISTRY),
            status_code=200,
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )
