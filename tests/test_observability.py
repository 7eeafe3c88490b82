"""The Grafana dashboard and the Prometheus scrape configuration in ``deploy/`` ask only for
metrics Troika serves, and scrape every service that serves them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import troika_gateway.gauges
import troika_shared.metrics

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
    assert set(jobs) == {"gateway", "planner", "executor", "reviewer"}
    assert "authorization" in jobs["gateway"], "the gateway's metrics need the operator's token"
