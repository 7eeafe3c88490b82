"""The Grafana dashboard and the Prometheus scrape configuration in ``deploy/`` ask only for
metrics Troika serves, and scrape every service that serves them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import yaml
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

import troika_gateway.gauges
import troika_shared.metrics

if TYPE_CHECKING:
    from troika_testkit.otlp import ReceivedSpan, TraceReceiver

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "troika-dashboard.json"
SCRAPE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
# Made by Litestar's Prometheus middleware on the gateway's first request (prefix troika_gateway)
GATEWAY_REQUESTS = {"troika_gateway_requests", "troika_gateway_request_duration_seconds"}


def _served() -> set[str]:
    """Every metric family the agents and the gateway's gauges serve."""
    assert troika_shared.metrics.HANDLED is not None  # imported for their registration
    assert troika_gateway.gauges.TASKS is not None
    return {family.name for family in REGISTRY.collect()} | GATEWAY_REQUESTS


def _family(sample: str) -> str:
    return re.sub(r"_(total|bucket|count|sum|created)$", "", sample)


def test_every_panel_asks_for_metrics_that_are_served() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "troika"
    served = _served()
    asked: set[str] = set()
    for panel in dashboard["panels"]:
        assert {"id", "type", "title", "gridPos", "targets"} <= set(panel), panel.get("title")
        for target in panel["targets"]:
            asked |= {_family(name) for name in re.findall(r"troika_[a-z_]+", target["expr"])}
    assert asked - served == set(), "the dashboard asks for metrics nothing serves"
    agents = {
        "troika_messages_handled",
        "troika_message_handling_seconds",
        "troika_messages_redelivered",
        "troika_llm_tokens",
        "troika_llm_cost_usd",
    }
    system = {
        "troika_tasks",
        "troika_pending_approvals",
        "troika_outbox_unpublished",
        "troika_outbox_lag_seconds",
        "troika_stream_messages",
    }
    assert agents | system <= asked, "every kind of metric has its panel"


def test_the_scrape_configuration_reads_every_service_that_serves_metrics() -> None:
    config = yaml.safe_load(SCRAPE.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"gateway", "worker", "planner", "executor", "reviewer"}
    assert "authorization" in jobs["gateway"], "the gateway's metrics need the operator's token"


# --- what a run shows (tests/test_compose.py runs the services as compose wires them) -----

SERVICES = {f"troika-{name}" for name in ("gateway", "worker", "planner", "executor", "reviewer")}
SERVER = 2  # OTLP's SpanKind: SPAN_KIND_SERVER


async def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """A service's metrics: each sample's value by its name and labels."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url)
    assert response.status_code == 200, (url, response.text)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def total(samples: dict, name: str, **labels: str) -> float:
    """The sum of a metric's samples that have ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


def assert_counters_moved(before: dict, after: dict) -> None:
    """Every service counted its part of one task's run."""
    handled = {
        "planner": ["plan.requested"],
        "executor": ["step.requested", "tool.execute"],
        "reviewer": ["review.requested"],
        "worker": ["plan.produced", "step.proposed", "tool.result", "review.verdict"],
    }
    for service, types in handled.items():
        for kind in types:
            labels = {"type": kind, "outcome": "handled"}
            moved = total(after[service], "troika_messages_handled_total", **labels) - total(
                before[service], "troika_messages_handled_total", **labels
            )
            assert moved >= 1, (service, kind)
        assert total(after[service], "troika_message_handling_seconds_count") > total(
            before[service], "troika_message_handling_seconds_count"
        ), service
    for agent in ("planner", "executor", "reviewer"):
        for name in ("troika_llm_tokens_total", "troika_llm_cost_usd_total"):
            assert total(after[agent], name) > total(before[agent], name), (agent, name)
    gateway = after["gateway"]
    assert total(gateway, "troika_tasks", status="completed") == 1
    assert total(gateway, "troika_pending_approvals") == 0
    assert total(gateway, "troika_gateway_requests_total") > total(
        before["gateway"], "troika_gateway_requests_total"
    )


def task_trace(spans: list[ReceivedSpan], task_id: str) -> list[ReceivedSpan]:
    """The spans of the trace(s) that worked on the task."""
    traces = {s.trace_id for s in spans if s.attributes.get("troika.task_id") == task_id}
    return [s for s in spans if s.trace_id in traces]


async def whole_trace(otlp: TraceReceiver, task_id: str) -> bool:
    """Whether every service's spans of the task arrived, up to the reviewer's verdict."""
    found = task_trace(otlp.received(), task_id)
    return {s.service for s in found} >= SERVICES and any(
        s.name == "process review.verdict" for s in found
    )


def assert_one_connected_trace(spans: list[ReceivedSpan], task_id: str) -> None:
    """One trace from the person's request through every service, the model calls and the
    tool run inside it; the person's approval, a request of its own, linked into it."""
    found = task_trace(spans, task_id)
    assert len({s.trace_id for s in found}) == 1, "one trace per task"
    assert {s.service for s in found} >= SERVICES
    ids = {s.span_id for s in found}
    [root] = [s for s in found if not s.parent_id]
    assert (root.service, root.kind, root.name) == ("troika-gateway", SERVER, "POST /tasks")
    orphans = [s.name for s in found if s.parent_id and s.parent_id not in ids]
    assert orphans == [], "every span hangs from the request"
    chats = [s for s in found if s.attributes.get("gen_ai.operation.name") == "chat"]
    assert {s.service for s in chats} == {"troika-planner", "troika-executor", "troika-reviewer"}
    assert all(s.attributes["gen_ai.usage.input_tokens"] > 0 for s in chats)
    [tool] = [s for s in found if s.name == "execute_tool create_file"]
    assert tool.service == "troika-executor"
    assert tool.attributes["troika.tool.outcome"] == "succeeded"
    assert "content" not in str(tool.attributes), "never the arguments"
    # the approval came in a request of its own: the task's work it caused links back to it
    approvals = {s.trace_id: s for s in spans
                 if s.kind == SERVER and s.name.endswith("/respond")}  # fmt: skip
    linked = [s for s in found for link in s.links if link in approvals]
    assert linked, "the approval's request is linked into the task's trace"
    assert all(s.service == "troika-gateway" for s in linked)
