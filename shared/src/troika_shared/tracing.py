"""Traces: one task is one trace, from the person's request through every service.

The W3C trace context travels in each bus message's headers (``traceparent``, ``tracestate``),
in the outbox with the messages a change of a task committed, and in the scheduler's jobs. A
service handling a message continues the trace it carries; the gateway keeps each task's first
context, so what the person does later (an approval, an answer) joins the task's trace, with a
link to the request that did it.

Spans follow OpenTelemetry's semantic conventions: messaging for deliveries, GenAI for model
calls (``chat {model}``: tokens, and the estimated cost as ``troika.cost_usd``) and tool runs
(``execute_tool {tool}``: the outcome, never the arguments). Export is off until an endpoint is
set: ``TROIKA_OTEL_ENDPOINT``, or the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` (OTLP over HTTP,
``/v1/traces`` is added). Log lines written inside a span carry its ``trace_id`` and
``span_id`` (see :func:`add_trace_ids`).
"""

from __future__ import annotations

import contextlib
import os
from importlib import metadata
from typing import TYPE_CHECKING, Any

import structlog
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.trace import Span

    from troika_shared.messages import Usage

__all__ = [
    "SERVICE_PREFIX",
    "add_trace_ids",
    "carrier",
    "configure_tracing",
    "context_of",
    "enabled",
    "endpoint_from",
    "failed",
    "job_span",
    "model_call",
    "set_usage",
    "task_span",
    "tool_run",
    "tracer",
]

SERVICE_PREFIX = "troika-"
_TRACER = "troika"
log = structlog.get_logger("troika.tracing")


_on: list[bool] = []


def enabled() -> bool:
    """Whether this process records spans (:func:`configure_tracing` found an endpoint)."""
    return bool(_on)


def tracer() -> trace.Tracer:
    """The process's tracer (a no-op one until :func:`configure_tracing` turns export on)."""
    return trace.get_tracer(_TRACER)


def endpoint_from(setting: str | None) -> str | None:
    """Where spans go: ``TROIKA_OTEL_ENDPOINT``, else the standard variables (the exporter
    reads those itself); ``None`` when neither is set."""
    if setting:
        return setting.rstrip("/") + "/v1/traces"
    standard = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
    return "" if any(os.environ.get(name) for name in standard) else None


def configure_tracing(
    service: str,
    endpoint: str | None,
    *,
    processor: SpanProcessor | None = None,
    instance: str = "",
) -> Callable[[], None]:
    """Turns tracing on for this process when there is somewhere to send the spans.

    Args:
        service: The service's name; the spans' ``service.name`` is ``troika-<service>``.
        endpoint: From :func:`endpoint_from` (``""``: the standard variables say where).
        processor: Takes the spans instead of an OTLP exporter (tests collect them in memory).
        instance: The replica (``service.instance.id``).

    Returns:
        What flushes and stops the export at shutdown (nothing to do when tracing is off).
    """
    if endpoint is None and processor is None:
        return lambda: None
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415 - only when tracing is on
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415

    attributes = {
        "service.name": SERVICE_PREFIX + service,
        "service.namespace": "troika",
        "service.version": metadata.version("troika-shared"),
    }
    if instance:
        attributes["service.instance.id"] = instance
    provider = TracerProvider(resource=Resource.create(attributes))
    if processor is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint or None))
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    _on.append(True)
    log.info("tracing.exporting", endpoint=endpoint or "(OTEL_EXPORTER_OTLP_ENDPOINT)")
    return provider.shutdown


# --- the context on the wire -------------------------------------------------------------


def carrier(span_context: Context | None = None) -> dict[str, str]:
    """The trace context as headers (``traceparent``, ``tracestate``): of ``span_context``,
    or of the current span; empty when there is no trace."""
    headers: dict[str, str] = {}
    propagate.inject(headers, context=span_context)
    return headers


def context_of(headers: Mapping[str, str] | None) -> Context:
    """The trace context that headers (or a stored carrier) hold; an empty one if none."""
    return propagate.extract(dict(headers or {}))


# --- spans -------------------------------------------------------------------------------


@contextlib.contextmanager
def task_span(name: str, task_id: str, stored: Mapping[str, str] | None) -> Iterator[Span]:
    """A span of work on a task, inside the task's trace.

    Work caused by the task's own messages is already in its trace and nests where it is;
    anything else (a person's request, a timer) continues the task's ``stored`` context and
    links to the span that caused it.
    """
    current = trace.get_current_span().get_span_context()
    parent: Context | None = context_of(stored)
    task_trace = trace.get_current_span(parent).get_span_context()
    links: list[Link] = []
    if current.is_valid and (not task_trace.is_valid or current.trace_id == task_trace.trace_id):
        parent = None  # nests in the current span
    elif current.is_valid:
        links.append(Link(current))
    with tracer().start_as_current_span(
        name, context=parent, links=links, attributes={"troika.task_id": task_id}
    ) as span:
        yield span


@contextlib.contextmanager
def job_span(
    name: str, queued_in: Mapping[str, str] | None, attributes: Mapping[str, str]
) -> Iterator[Span]:
    """A queued job's run: a trace of its own, linked to the one that queued it."""
    cause = trace.get_current_span(context_of(queued_in)).get_span_context()
    with tracer().start_as_current_span(
        name,
        context=otel_context.Context(),
        kind=SpanKind.CONSUMER,
        links=[Link(cause)] if cause.is_valid else [],
        attributes=dict(attributes),
    ) as span:
        yield span


@contextlib.contextmanager
def model_call(
    model: str, *, provider: str, server: str | None, max_tokens: int, temperature: float
) -> Iterator[Span]:
    """A model call as a GenAI client span (``chat {model}``); record what it used with
    :func:`set_usage`. A failure sets the span's error status and ``error.type``."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.request.max_tokens": max_tokens,
        "gen_ai.request.temperature": temperature,
    }
    if server:
        attributes["server.address"] = server
    with tracer().start_as_current_span(
        f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes,
        record_exception=False, set_status_on_exception=False,
    ) as span:  # fmt: skip
        try:
            yield span
        except Exception as exc:
            usage = getattr(exc, "usage", None)
            if usage is not None:
                set_usage(span, usage)
            span.set_attribute("error.type", type(exc).__name__)
            failed(span, str(exc))
            raise


def failed(span: Span, why: str) -> None:
    """Marks a span's work as failed, saying why (shortened)."""
    span.set_status(Status(StatusCode.ERROR, why[:300]))


def set_usage(span: Span, usage: Usage) -> None:
    """Records a model call's tokens and estimated cost on its span."""
    span.set_attribute("gen_ai.response.model", usage.model)
    span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
    span.set_attribute("troika.cost_usd", usage.cost_usd)


@contextlib.contextmanager
def tool_run(tool: str, call_id: str, task_id: str) -> Iterator[Span]:
    """A tool call run as a GenAI span (``execute_tool {tool}``); the caller sets
    ``troika.tool.outcome``. The arguments are never recorded: they may hold secrets."""
    attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool,
        "gen_ai.tool.call.id": call_id,
        "troika.task_id": task_id,
    }
    with tracer().start_as_current_span(
        f"execute_tool {tool}", kind=SpanKind.INTERNAL, attributes=attributes
    ) as span:
        yield span


# --- logs --------------------------------------------------------------------------------


def add_trace_ids(
    _logger: object, _method: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """A structlog processor: the current span's ``trace_id`` and ``span_id``, when in one."""
    found = trace.get_current_span().get_span_context()
    if found.is_valid:
        event.setdefault("trace_id", format(found.trace_id, "032x"))
        event.setdefault("span_id", format(found.span_id, "016x"))
    return event
