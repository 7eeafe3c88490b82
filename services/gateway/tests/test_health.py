"""Liveness and readiness, against real NATS and Redis."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from troika_gateway import create_app
from troika_gateway.settings import GatewaySettings
from troika_shared.bus import Bus


def settings(nats_url: str, redis_url: str, prefix: str) -> GatewaySettings:
    return GatewaySettings(nats_url=nats_url, redis_url=redis_url, bus_prefix=prefix)


async def test_ready_when_nats_and_redis_answer(nats_url, redis_url, bus_prefix, bus) -> None:
    async with AsyncTestClient(create_app(settings(nats_url, redis_url, bus_prefix))) as client:
        health = await client.get("/health")
        ready = await client.get("/ready")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"nats": "ok", "redis": "ok"},
        "errors": {},
    }


async def test_not_ready_names_the_server_that_does_not_answer(nats_url, bus_prefix, bus) -> None:
    app = create_app(settings(nats_url, "redis://127.0.0.1:1/0", bus_prefix))
    async with AsyncTestClient(app) as client:
        health = await client.get("/health")
        ready = await client.get("/ready")
    assert health.status_code == 200  # alive, just not ready
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "not_ready"
    assert body["checks"] == {"nats": "ok", "redis": "failing"}
    assert "redis" in body["errors"]


async def test_the_api_is_described_by_openapi(nats_url, redis_url, bus_prefix, bus) -> None:
    async with AsyncTestClient(create_app(settings(nats_url, redis_url, bus_prefix))) as client:
        schema = await client.get("/schema/openapi.json")
        swagger = await client.get("/schema/swagger")
    assert schema.status_code == 200
    assert {"/health", "/ready"} <= set(schema.json()["paths"])
    assert swagger.status_code == 200
    assert "swagger" in swagger.text.lower()


async def test_starting_the_gateway_creates_the_bus_streams(nats_url, redis_url, bus_prefix):
    gateway_settings = settings(nats_url, redis_url, bus_prefix)
    async with AsyncTestClient(create_app(gateway_settings)) as client:
        assert (await client.get("/health")).status_code == 200
    async with await Bus.connect(gateway_settings, name="test") as bus:
        try:
            for spec in bus.topology.streams():
                info = await bus.js.stream_info(spec.name)
                assert info.config.subjects == list(spec.subjects)
        finally:
            await bus.delete_streams()
