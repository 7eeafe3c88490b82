"""Behind the web app (a trusted proxy): each person's own address counts, not the proxy's."""

from __future__ import annotations

import httpx

from .conftest import STRONG_PASSWORD, sign_up


async def _logins(http: httpx.AsyncClient, count: int, forwarded: str, first: int = 0) -> list[int]:
    return [
        (
            await http.post(
                "/auth/login",
                json={"login": f"u{first + n}", "password": "wrong"},
                headers={"X-Forwarded-For": forwarded},
            )
        ).status_code
        for n in range(count)
    ]


async def test_people_behind_a_trusted_proxy_have_their_own_login_limit(client, gateway) -> None:
    limit = gateway.settings.login_attempts_per_address
    assert await _logins(client, limit + 1, "203.0.113.7") == [401] * limit + [429]
    # Someone else signing in through the same proxy is not locked out.
    account = await sign_up(client, "grace")
    other = await client.post(
        "/auth/login",
        json={"login": account.username, "password": STRONG_PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.20"},
    )
    assert other.status_code == 200


async def test_an_untrusted_peer_cannot_pick_its_address(gateway) -> None:
    limit = gateway.settings.login_attempts_per_address
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")  # not a trusted proxy
    async with httpx.AsyncClient(base_url=gateway.url, transport=transport) as http:
        statuses = [
            (await _logins(http, 1, f"203.0.113.{n}", first=n))[0] for n in range(limit + 1)
        ]
    assert statuses == [401] * limit + [429]  # all counted against 127.0.0.2
