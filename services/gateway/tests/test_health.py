"""Liveness, readiness, OpenAPI and metrics."""

from __future__ import annotations

import typing

import httpx
from litestar.testing import AsyncTestClient

from troika_gateway import create_app
from troika_shared.task_events import AnyTaskEvent, kind_of


async def test_ready_when_database_nats_and_redis_answer(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    ready = await client.get("/ready")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "nats": "ok", "redis": "ok"},
        "errors": {},
    }


async def test_not_ready_names_the_server_that_does_not_answer(settings, bus) -> None:
    app = create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    async with AsyncTestClient(app) as test_client:
        health = await test_client.get("/health")
        ready = await test_client.get("/ready")
    assert health.status_code == 200  # alive, just not ready
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "not_ready"
    assert body["checks"] == {"database": "ok", "nats": "ok", "redis": "failing"}
    assert "redis" in body["errors"]


async def test_the_api_is_described_by_openapi(client: httpx.AsyncClient) -> None:
    schema = await client.get("/schema/openapi.json")
    swagger = await client.get("/schema/swagger")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/health", "/ready", "/auth/login", "/tasks", "/tasks/{task_id}/events"} <= set(paths)
    assert schema.json()["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    assert swagger.status_code == 200
    assert "swagger" in swagger.text.lower()


async def test_every_kind_of_event_body_is_typed_in_the_openapi_schema(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    schemas = document["components"]["schemas"]
    data = schemas["EventView"]["properties"]["data"]
    named = {ref["$ref"].rsplit("/", 1)[1] for ref in data["anyOf"]}
    assert named == {body.__name__ for body in typing.get_args(AnyTaskEvent)}
    for body in typing.get_args(AnyTaskEvent):
        assert f"`{kind_of(body())}`: {body.__name__}" in data["description"]
        assert "kind" not in schemas[body.__name__].get("properties", {})  # it is the event's
    plan = schemas["PlanReady"]["properties"]
    assert plan["subtasks"]["items"] == {"$ref": "#/components/schemas/PlannedSubtask"}
    assert set(schemas["PlannedSubtask"]["required"]) == {"id"}


async def test_metrics_are_exposed_for_prometheus(client: httpx.AsyncClient) -> None:
    await client.get("/health")
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert "troika_gateway_requests_total" in metrics.text


async def test_every_answer_tells_the_browser_not_to_sniff_frame_or_refer(
    client: httpx.AsyncClient,
) -> None:
    answers = [
        await client.get("/health"),  # an answer
        await client.get("/no/such/address"),  # the router's 404
        await client.get("/tasks"),  # 401: no session
        await client.post("/auth/login", content=b"{not json"),  # 400
    ]
    assert [a.status_code for a in answers] == [200, 404, 401, 400]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"


async def test_without_a_token_the_metrics_answer_this_machine_only(
    client: httpx.AsyncClient,
) -> None:
    # The web app (a trusted proxy here) passing on a request from elsewhere
    outside = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert outside.status_code == 401
    assert "troika_gateway" not in outside.text
    assert (await client.get("/metrics")).status_code == 200
