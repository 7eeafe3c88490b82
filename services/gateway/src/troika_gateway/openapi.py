"""The API's OpenAPI description: served at ``/schema`` (Swagger UI at ``/schema/swagger``)."""

from __future__ import annotations

from importlib import metadata

from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

__all__ = ["BEARER", "openapi_config"]

BEARER: list[dict[str, list[str]]] = [{"BearerToken": []}]
"""The security requirement of routes that need an access token."""


def openapi_config() -> OpenAPIConfig:
    """OpenAPI at ``/schema`` with the bearer-token scheme."""
    return OpenAPIConfig(
        title="Troika",
        version=metadata.version("troika-gateway"),
        description=(
            "The public API of Troika, a multi-agent task assistant. Sign in with "
            "`POST /auth/login` and send the access token as `Authorization: Bearer …`. "
            "Errors are RFC 9457 problem details."
        ),
        path="/schema",
        render_plugins=[SwaggerRenderPlugin()],
        components=Components(
            security_schemes={
                "BearerToken": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="The access token from /auth/login or /auth/refresh.",
                )
            }
        ),
    )
