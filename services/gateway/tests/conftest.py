"""The gateway under test: a real server on a loopback port, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
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


@pytest.fixture
def gateway_process(tmp_path, nats_url, redis_url, bus_prefix, platforms):
    """The gateway as its own process, as ``python -m troika_gateway`` serves it (the fuzzer
    drives it synchronously from outside); the social platforms it asks about pasted tokens
    are the loopback ones."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TROIKA_")}
    env.update(
        TROIKA_SECRET_KEY=secrets.token_urlsafe(48),
        TROIKA_DATA_DIR=str(tmp_path / "data"),
        TROIKA_NATS_URL=nats_url,
        TROIKA_REDIS_URL=redis_url,
        TROIKA_REDIS_PREFIX=f"{bus_prefix}:",
        TROIKA_BUS_PREFIX=bus_prefix,
        TROIKA_GATEWAY_PORT=str(port),
        TROIKA_PASSWORD_TIME_COST="1",
        TROIKA_PASSWORD_MEMORY_KIB="8192",
        TROIKA_LOGIN_ATTEMPTS_PER_ADDRESS="100000",
        TROIKA_LOGIN_ATTEMPTS_PER_ACCOUNT="100000",
        TROIKA_MAX_UPLOAD_BYTES="65536",
        TROIKA_LOG_FORMAT="json",
        TROIKA_LOG_LEVEL="warning",
        TROIKA_TWITTER_API_URL=platforms.base("x"),
        TROIKA_INSTAGRAM_API_URL=platforms.base("instagram"),
        TROIKA_FACEBOOK_API_URL=platforms.base("facebook"),
        TROIKA_LINKEDIN_API_URL=platforms.base("linkedin"),
    )
    log = (tmp_path / "gateway.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "troika_gateway"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    # as long as the other tests give a gateway: its start shares the machine with whole stacks
    deadline = time.monotonic() + scaled(60)
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        process.kill()
        process.wait()
        log.close()
        pytest.fail("the gateway did not become ready:\n" + (tmp_path / "gateway.log").read_text())
    yield url
    process.terminate()
    process.wait(scaled(15))
    log.close()
    if any(
        line
        for line in (tmp_path / "gateway.log").read_text().splitlines()
        if "request.failed" in line
    ):
        pytest.fail(
            "the gateway logged unexpected errors:\n" + (tmp_path / "gateway.log").read_text()
        )
