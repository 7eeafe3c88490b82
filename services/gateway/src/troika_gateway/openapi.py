"""The API's OpenAPI description: served at ``/schema`` (Swagger UI at ``/schema/swagger``)."""

from __future__ import annotations

import typing
from importlib import metadata
from typing import TYPE_CHECKING, Any

from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, OpenAPIType, Reference, Schema, SecurityScheme
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

from troika_shared.task_events import AnyTaskEvent, TaskEventBody

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

__all__ = ["BEARER", "EVENT_DATA", "EventBodies", "openapi_config"]

BEARER: list[dict[str, list[str]]] = [{"BearerToken": []}]
"""The security requirement of routes that need an access token."""


_BODIES: tuple[type[TaskEventBody], ...] = typing.get_args(AnyTaskEvent)


class _EventData:
    """Marks the ``data`` of a served event (``Annotated[dict[str, Any], EVENT_DATA]``)."""


EVENT_DATA = _EventData()
"""The mark of an event's ``data``: typed in the schema by :class:`EventBodies`."""


class EventBodies(OpenAPISchemaPlugin):
    """Describes an event's ``data`` as any of the typed bodies of ``troika_shared.task_events``.

    An event is served as ``{"seq", "kind", "data", "created_at"}``, ``data`` being the body of
    that kind without its tag; each body is a component of its own (its class's name), and the
    ``data`` schema names which kind has which.
    """

    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:  # noqa: ANN401, ARG004 - the protocol's
        return False

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return any(mark is EVENT_DATA for mark in field_definition.metadata)

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        del field_definition
        bodies: list[Schema | Reference] = []
        for body in _BODIES:
            reference = schema_creator.for_field_definition(FieldDefinition.from_annotation(body))
            if isinstance(reference, Reference):
                schema = schema_creator.schema_registry.from_reference(reference).schema
                # the tag is the event's own `kind`, not a field of its data
                schema.properties = {
                    name: value
                    for name, value in (schema.properties or {}).items()
                    if name != "kind"
                }
                schema.required = [name for name in schema.required or () if name != "kind"] or None
            bodies.append(reference)
        kinds = ", ".join(f"`{body.__struct_config__.tag}`: {body.__name__}" for body in _BODIES)
        return Schema(
            type=OpenAPIType.OBJECT,
            any_of=bodies,
            description=(
                f"The event's body; its `kind` says which ({kinds}). Bodies only ever gain "
                "fields, with defaults; a kind a client does not know yet can be shown as is."
            ),
        )


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
            },
        ),
    )
