"""The gateway under test: a real server on a loopback port, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn

from troika_gateway import create_app
from troika_gateway.settings import GatewaySettings
from troika_testkit import scaled
from troika_testkit.ports import free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from litestar import Litestar

    from troika_testkit import Servers

STRONG_PASSWORD = "correct horse battery staple"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request, tmp_path: Path, troika_servers: Servers) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'troika.db'}"
    if troika_servers.postgres_admin_url is None:
        pytest.skip("no PostgreSQL server answers (CI always has one)")
    url = await troika_servers.create_database()
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, nats_url: str, redis_url: str, bus_prefix: str
) -> GatewaySettings:
    return GatewaySettings(
        secret_key=secrets.token_urlsafe(48),
        database_url=database_url,
        data_dir=tmp_path / "data",
        nats_url=nats_url,
        redis_url=redis_url,
        redis_prefix=f"{bus_prefix}:",
        bus_prefix=bus_prefix,
        max_upload_bytes=256 * 1024,
        max_photo_bytes=64 * 1024,
        login_attempts_per_address=10,
        password_time_cost=1,  # fast hashing for tests; the default is what production uses
        password_memory_kib=8 * 1024,
    )


@dataclass
class Gateway:
    """A running gateway."""

    url: str
    app: Litestar
    settings: GatewaySettings


@pytest.fixture
async def gateway(settings: GatewaySettings, bus) -> AsyncIterator[Gateway]:
    """The gateway served by uvicorn on a free loopback port, in this test's event loop."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            proxy_headers=True,
            forwarded_allow_ips=list(settings.trusted_proxies),
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()  # raises what stopped it
            pytest.fail("the gateway exited during start-up")
        await asyncio.sleep(0.01)
    try:
        yield Gateway(f"http://127.0.0.1:{port}", app, settings)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, scaled(15))


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15) as http:
        yield http


@dataclass
class Account:
    """A signed-in user."""

    username: str
    email: str
    password: str
    tokens: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}


async def sign_up(client: httpx.AsyncClient, name: str | None = None) -> Account:
    """Registers and signs in a new user."""
    name = name or f"user{uuid.uuid4().hex[:8]}"
    email = f"{name}@example.com"
    registered = await client.post(
        "/auth/register", json={"email": email, "username": name, "password": STRONG_PASSWORD}
    )
    assert registered.status_code == 201, registered.text
    login = await client.post("/auth/login", json={"login": name, "password": STRONG_PASSWORD})
    assert login.status_code == 200, login.text
    return Account(name, email, STRONG_PASSWORD, login.json())


@pytest.fixture
async def alice(client: httpx.AsyncClient) -> Account:
    return await sign_up(client, "alice")


@pytest.fixture
async def bob(client: httpx.AsyncClient) -> Account:
    return await sign_up(client, "bob")


def assert_problem(response: httpx.Response, status: int, contains: str = "") -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status (and detail text)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "instance"} <= set(body)
    assert contains.lower() in body["detail"].lower(), body
    return body
