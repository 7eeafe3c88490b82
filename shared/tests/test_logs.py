"""What a service's log says, and what it leaves out."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from troika_shared.logs import configure_logging


def lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.usefixtures("restores_logging")
@pytest.mark.parametrize("client", ["httpx", "httpx2"])
def test_an_http_clients_line_for_each_request_waits_for_debug(client: str) -> None:
    out = io.StringIO()
    configure_logging(service="executor", fmt="json", stream=out)
    logging.getLogger(client).info('HTTP Request: POST http://llm/v1/chat "HTTP/1.1 200 OK"')
    logging.getLogger(client).warning("retrying after a dropped connection")
    structlog.get_logger("troika.llm").info("llm.completed", latency_ms=12.5)
    assert [line["event"] for line in lines(out)] == [
        "retrying after a dropped connection",
        "llm.completed",
    ]

    out = io.StringIO()
    configure_logging(service="executor", level="debug", fmt="json", stream=out)
    logging.getLogger(client).info('HTTP Request: POST http://llm/v1/chat "HTTP/1.1 200 OK"')
    [line] = lines(out)
    assert line["event"].startswith("HTTP Request: POST"), "still there for whoever looks closer"
    assert line["service"] == "executor"


@pytest.mark.usefixtures("restores_logging")
def test_troikas_lines_and_other_packages_lines_read_alike() -> None:
    out = io.StringIO()
    configure_logging(service="worker", fmt="json", stream=out)
    log = structlog.get_logger("troika.gateway.store")
    log.info("answer.applied", task_id="t1", overhead_ms=1.5)
    log.debug("task.write_conflict", task_id="t1")  # below the level: not written
    try:
        _ = 1 / 0
    except ZeroDivisionError:
        log.exception("task.failed", task_id="t1")
    logging.getLogger("nats").warning("reconnecting to %s", "nats://bus")
    applied, failed, other = lines(out)
    assert {k: applied[k] for k in ("event", "logger", "service", "level", "task_id")} == {
        "event": "answer.applied",
        "logger": "troika.gateway.store",
        "service": "worker",
        "level": "info",
        "task_id": "t1",
    }
    assert applied["overhead_ms"] == 1.5
    assert failed["level"] == "error"
    assert failed["exception"][0]["exc_type"] == "ZeroDivisionError"
    assert {k: other[k] for k in ("event", "logger", "service", "level")} == {
        "event": "reconnecting to nats://bus",
        "logger": "nats",
        "service": "worker",
        "level": "warning",
    }
    assert "timestamp" in applied
    assert "timestamp" in other
