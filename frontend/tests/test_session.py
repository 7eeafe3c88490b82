"""The web app's renewal of a session against a real gateway: the tabs of one browser share one
renewal; a holder of the old refresh token elsewhere is not handed the new pair."""

from __future__ import annotations

import secrets

import httpx
import pytest

from troika_client import ApiError, Gateway
from troika_frontend import session
from troika_testkit.ports import free_port
from troika_testkit.processes import gateway_ready

PASSWORD = "correct horse battery staple 42"


@pytest.fixture
async def gateway_url(spawn, tmp_path, redis_url, bus_prefix):
    port = free_port()
    spawn(
        "troika_gateway", name="api", TROIKA_GATEWAY_PORT=str(port),
        TROIKA_DATA_DIR=str(tmp_path / "data"), TROIKA_SECRET_KEY=secrets.token_urlsafe(48),
        TROIKA_REDIS_URL=redis_url, TROIKA_REDIS_PREFIX=f"{bus_prefix}:",
        TROIKA_PASSWORD_TIME_COST="1", TROIKA_PASSWORD_MEMORY_KIB="8192",
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    await gateway_ready(url)
    saved = list(session._gateway)
    session._gateway[:] = [Gateway(url)]
    yield url
    session._gateway[:] = saved


async def test_one_browsers_tabs_share_a_renewal_and_no_one_else_gets_it(gateway_url) -> None:
    async with httpx.AsyncClient(base_url=gateway_url) as http:
        account = {"email": "ada@example.com", "username": "ada", "password": PASSWORD}
        assert (await http.post("/auth/register", json=account)).status_code == 201
        login = await http.post("/auth/login", json={"login": "ada", "password": PASSWORD})
        old = login.json()["refresh_token"]

    first = await session._exchange(old, "browser-a")
    second = await session._exchange(old, "browser-a")  # another tab, a moment later
    assert second == first
    assert first["refresh_token"] != old
    with pytest.raises(ApiError) as refused:  # the old token, shown from another browser
        await session._exchange(old, "browser-b")
    assert refused.value.status == 401
    assert "not valid" in str(refused.value.detail)
