"""/metrics is the operator's: with a token set, only with that token; without one, only from
this machine."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from .conftest import assert_problem

TOKEN = "operator-scrape-token-0123456789"


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"metrics_token": SecretStr(TOKEN)})


async def test_with_a_token_set_only_its_holder_reads_the_metrics(
    client: httpx.AsyncClient,
) -> None:
    assert_problem(await client.get("/metrics"), 401, "operator's token")
    wrong = {"Authorization": "Bearer not-the-token"}
    assert_problem(await client.get("/metrics", headers=wrong), 401)
    read = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert read.status_code == 200
    assert "troika_gateway_requests_total" in read.text


def _sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


async def test_the_scrape_reads_what_the_system_holds_now(client: httpx.AsyncClient, alice) -> None:
    operator = {"Authorization": f"Bearer {TOKEN}"}
    before = (await client.get("/metrics", headers=operator)).text
    planning = _sample(before, "troika_tasks", status="planning") or 0.0
    created = await client.post("/tasks", headers=alice.headers, json={"objective": "A haiku"})
    assert created.status_code == 201
    after = (await client.get("/metrics", headers=operator)).text
    assert _sample(after, "troika_tasks", status="planning") == planning + 1
    assert _sample(after, "troika_pending_approvals") is not None
    assert _sample(after, "troika_outbox_unpublished") is not None
    assert _sample(after, "troika_outbox_lag_seconds") is not None
    assert _sample(after, "troika_stream_messages", stream="planner") is not None
