"""Logging set-up: structlog, configured once per process.

Console output (coloured when on a terminal) for people, one JSON object per line otherwise.
Standard-library loggers (the NATS client, uvicorn) go through the same processors and
renderer as structlog's, so a process never mixes formats. Bind ``task_id``, ``message_id``
and ``type`` with ``structlog.contextvars.bound_contextvars`` at the start of each unit of
work.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import IO, TYPE_CHECKING

import structlog

from troika_shared.tracing import add_trace_ids

if TYPE_CHECKING:
    from troika_shared.settings import LogFormat

__all__ = ["CHATTY_CLIENTS", "configure_logging"]

# HTTP clients that log every request at INFO (the LLM client's among them): heard from at
# DEBUG, or when something goes wrong.
CHATTY_CLIENTS = ("httpx", "httpx2")


def configure_logging(
    *,
    service: str,
    level: str = "info",
    fmt: LogFormat = "auto",
    stream: IO[str] | None = None,
) -> None:
    """Configures structlog and the standard library's logging for this process.

    Args:
        service: Bound to every log line as ``service``.
        level: The lowest level logged.
        fmt: ``console``, ``json`` or ``auto`` (console when ``stream`` is a terminal).
        stream: Where log lines go; standard error by default.
    """
    out = stream if stream is not None else sys.stderr
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    numeric_level = logging.getLevelNamesMapping()[level.upper()]

    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: structlog.types.Processor
    if console:
        colors = out.isatty() or os.environ.get("FORCE_COLOR", "") not in ("", "0")
        # Plain tracebacks: the fancier ones print local variables, and locals hold secrets.
        renderer = structlog.dev.ConsoleRenderer(
            colors=colors, exception_formatter=structlog.dev.plain_traceback
        )
    else:
        shared.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
        renderer = structlog.processors.JSONRenderer()

    # Troika's own lines are rendered and written by structlog itself; those of the standard
    # library's loggers (other packages') go through a handler with the same processors. Passed
    # through the standard library's logging as well, Troika's lines took 5.3 % of the worker's
    # CPU time and 7.7 % of the executor's under `make profile`; written directly, 3.4 and 6.2 %.
    structlog.configure(
        processors=[*shared, renderer],
        logger_factory=_NamedWriteLoggerFactory(out),
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric_level)
    quiet = logging.NOTSET if numeric_level <= logging.DEBUG else logging.WARNING
    for chatty in CHATTY_CLIENTS:  # their requests are logged as what they were for (llm.completed)
        logging.getLogger(chatty).setLevel(quiet)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


class _NamedWriteLogger(structlog.WriteLogger):
    """A logger that writes each rendered line to the stream, with the name it was asked for
    (``structlog.get_logger(name)``), shown as ``logger`` as a standard library logger's is."""

    def __init__(self, file: IO[str], name: str) -> None:
        super().__init__(file)  # type: ignore[arg-type]
        self.name = name


class _NamedWriteLoggerFactory:
    def __init__(self, file: IO[str]) -> None:
        self.file = file

    def __call__(self, *args: object) -> _NamedWriteLogger:
        return _NamedWriteLogger(self.file, str(args[0]) if args else "")
