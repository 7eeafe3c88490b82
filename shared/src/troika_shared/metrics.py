"""An agent service's Prometheus metrics: the messages it handled (by type and outcome), how
long each took, redeliveries, and its model calls' tokens and estimated cost by model.

Served on ``TROIKA_METRICS_PORT`` (off when unset) at ``TROIKA_METRICS_HOST`` — the loopback
address unless the operator opens it (in a container, to the scraper's network): the counters
say who uses what, not for everyone to read. Prometheus's ``job`` and ``instance`` labels tell
services and replicas apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from prometheus_client import Counter, Histogram, start_http_server

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from troika_shared.messages import Usage

__all__ = [
    "HANDLED",
    "HANDLING_SECONDS",
    "LLM_CALLS",
    "LLM_COST",
    "LLM_TOKENS",
    "REDELIVERED",
    "count_llm_call",
    "serve_metrics",
]

log = structlog.get_logger("troika.metrics")

HANDLED = Counter(
    "troika_messages_handled",
    "Messages the service finished a delivery of, by message type and outcome "
    "(handled, retried, dead_lettered, undecodable, duplicate).",
    ["type", "outcome"],
)
HANDLING_SECONDS = Histogram(
    "troika_message_handling_seconds",
    "How long one delivery took to handle, model and tool calls included.",
    ["type"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
REDELIVERED = Counter(
    "troika_messages_redelivered",
    "Deliveries of a message after its first (a retry, or a replica that stopped mid-way).",
    ["type"],
)
LLM_CALLS = Counter("troika_llm_calls", "Model calls that answered, by model.", ["model"])
LLM_TOKENS = Counter(
    "troika_llm_tokens", "Tokens of model calls, by model and kind (prompt, completion).",
    ["model", "kind"],
)  # fmt: skip
LLM_COST = Counter(
    "troika_llm_cost_usd", "The estimated cost of model calls in US dollars, by model.", ["model"]
)


def count_llm_call(usage: Usage) -> None:
    """Counts one model call with its tokens and estimated cost."""
    LLM_CALLS.labels(usage.model).inc()
    LLM_TOKENS.labels(usage.model, "prompt").inc(usage.prompt_tokens)
    LLM_TOKENS.labels(usage.model, "completion").inc(usage.completion_tokens)
    LLM_COST.labels(usage.model).inc(usage.cost_usd)


def serve_metrics(port: int | None, host: str) -> WSGIServer | None:
    """Serves the metrics at ``http://host:port/metrics`` in a thread (nothing when ``port``
    is unset); the server, to shut down."""
    if port is None:
        return None
    try:
        server, _ = start_http_server(port, addr=host)
    except OSError as exc:  # the service runs on without them, saying why
        log.error(  # noqa: TRY400 - an expected condition: the reason, no traceback
            "metrics.not_served", address=f"{host}:{port}", error=str(exc)
        )
        return None
    log.info("metrics.serving", address=f"http://{host}:{port}/metrics")
    return server
