"""Troika's shared library: bus messages, the NATS JetStream bus, settings, logging and errors."""

from troika_shared.bus import Bus, Delivery, WorkQueue
from troika_shared.errors import (
    DependencyUnavailable,
    PermanentError,
    RetryableError,
    TroikaError,
    UndecodableMessage,
    UnroutableMessage,
)
from troika_shared.logs import configure_logging
from troika_shared.router import Router
from troika_shared.runner import ServiceRunner, run_until_signalled, serve
from troika_shared.settings import AgentSettings, BusSettings, TroikaSettings
from troika_shared.subjects import StreamKey, Topology

__all__ = [
    "AgentSettings",
    "Bus",
    "BusSettings",
    "Delivery",
    "DependencyUnavailable",
    "PermanentError",
    "RetryableError",
    "Router",
    "ServiceRunner",
    "StreamKey",
    "Topology",
    "TroikaError",
    "TroikaSettings",
    "UndecodableMessage",
    "UnroutableMessage",
    "WorkQueue",
    "configure_logging",
    "run_until_signalled",
    "serve",
]
