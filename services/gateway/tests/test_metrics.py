"""/metrics is the operator's: with a token set, only with that token; without one, only from
this machine."""

from __future__ import annotations

import httpx
import pytest
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
