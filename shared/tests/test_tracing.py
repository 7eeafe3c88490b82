"""Traces in one process, collected with an in-memory exporter: a delivery continues the trace
its message carries and sends its answers on in it, model calls are GenAI spans with their
tokens and cost, and log lines name the span they were written in."""

from __future__ import annotations

import io
import json

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from troika_shared import tracing
from troika_shared.errors import PermanentError
from troika_shared.llm import UnusableAnswer
from troika_shared.logs import configure_logging
from troika_shared.messages import PlanRequested
from troika_shared.subjects import StreamKey
from troika_testkit import wait_for
from troika_testkit.streams import stored

from .conftest import answer, the_dead_letter
from .test_llm import GOOD, ask, client


@pytest.fixture
def json_log(restores_logging: None) -> io.StringIO:
    """This process's log lines, as JSON, for the test (as they were after it)."""
    out = io.StringIO()
    configure_logging(service="planner", fmt="json", stream=out)
    return out


def _by_name(spans) -> dict:
    return {span.name: span for span in spans.get_finished_spans()}


async def test_a_delivery_continues_the_trace_its_message_came_in(harness, bus, spans) -> None:
    with tracing.tracer().start_as_current_span("POST /tasks") as request:
        sent = PlanRequested(correlation_id="task-1", objective="write a haiku")
        await bus.publish(sent)
    cause = request.get_span_context()

    async def answered() -> bool:
        # the answer goes out before the delivery's span ends
        ended = "process plan.requested" in _by_name(spans)
        return ended and len(await stored(bus, StreamKey.RESULTS)) == 1

    await wait_for(answered, what="the answer")
    handling = _by_name(spans)["process plan.requested"]
    assert handling.context.trace_id == cause.trace_id, "one trace"
    assert handling.parent.span_id == cause.span_id
    assert handling.kind is SpanKind.CONSUMER
    assert handling.attributes["troika.task_id"] == "task-1"
    assert handling.attributes["messaging.message.id"] == sent.id
    assert handling.attributes["troika.outcome"] == "handled"
    assert handling.status.status_code is StatusCode.UNSET

    # the answer goes on in the same trace, as the handling's child
    stream = bus.topology.stream_name(StreamKey.RESULTS)
    raw = await bus.js.get_last_msg(stream, bus.topology.subject_for(answer(sent)))
    carried = trace.get_current_span(tracing.context_of(raw.headers)).get_span_context()
    assert (carried.trace_id, carried.span_id) == (cause.trace_id, handling.context.span_id)


async def test_a_message_without_a_trace_starts_one_and_a_dead_letter_fails_its_span(
    harness, bus, spans
) -> None:
    async def refuse(_call: int) -> None:
        raise PermanentError("no such objective")

    harness.behaviour = refuse
    await bus.publish(PlanRequested(correlation_id="task-2", objective="o"))
    await the_dead_letter(bus)

    async def ended() -> bool:
        return "process plan.requested" in _by_name(spans)

    await wait_for(ended, what="the delivery's span")
    handling = _by_name(spans)["process plan.requested"]
    assert handling.parent is None, "a root of its own"
    assert handling.attributes["troika.outcome"] == "dead_lettered"
    assert handling.status.status_code is StatusCode.ERROR


async def test_a_model_call_is_a_genai_span_with_its_tokens_and_cost(scripted_llm, spans) -> None:
    scripted_llm.reply("Haiku", GOOD)
    with tracing.tracer().start_as_current_span("process step.requested") as handling:
        done = await ask(client(scripted_llm))
    chat = _by_name(spans)["chat gpt-4o-mini"]
    assert chat.parent.span_id == handling.get_span_context().span_id
    assert chat.kind is SpanKind.CLIENT
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.provider.name"] == "openai"
    assert chat.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert chat.attributes["gen_ai.usage.input_tokens"] == 120
    assert chat.attributes["gen_ai.usage.output_tokens"] == 30
    assert chat.attributes["troika.cost_usd"] == done.usage.cost_usd > 0
    assert chat.attributes["server.address"] == "127.0.0.1"


async def test_a_refused_model_call_fails_its_span_with_the_reason(scripted_llm, spans) -> None:
    scripted_llm.fail(400, body="invalid request: bad schema")
    with pytest.raises(UnusableAnswer):
        await ask(client(scripted_llm))
    chat = _by_name(spans)["chat gpt-4o-mini"]
    assert chat.status.status_code is StatusCode.ERROR
    assert chat.attributes["error.type"] == "UnusableAnswer"
    assert "400" in chat.status.description


def test_log_lines_written_in_a_span_carry_its_ids(spans, json_log) -> None:
    log = structlog.get_logger("test")
    with tracing.tracer().start_as_current_span("process plan.requested") as span:
        log.info("plan.made")
    log.info("outside")
    inside, outside = (json.loads(line) for line in json_log.getvalue().splitlines())
    ids = span.get_span_context()
    assert inside["trace_id"] == format(ids.trace_id, "032x")
    assert inside["span_id"] == format(ids.span_id, "016x")
    assert "trace_id" not in outside
