"""Bad input gets a clear 4xx problem and changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from troika_gateway.db.models import Task, User

from .conftest import STRONG_PASSWORD, assert_problem


async def rows(gateway, model) -> int:
    async with gateway.app.state.sessionmaker() as db:
        return await db.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[]",
        b'"just a string"',
        b'{"objective": 42}',
        b'{"objective": ""}',
        b'{"objective": "x", "unknown": 1}',
        b'{"objective": "x", "budget": {"max_steps": -1}}',
        b'{"objective": "x", "budget": {"max_cost_usd": "lots"}}',
        b'{"objective": "' + b"x" * 20_001 + b'"}',
        b'{"objective": "   "}',
    ],
)
async def test_a_bad_task_body_is_refused_and_creates_nothing(client, gateway, alice, body) -> None:
    response = await client.post(
        "/tasks", headers={**alice.headers, "content-type": "application/json"}, content=body
    )
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await rows(gateway, Task) == 0


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (
            {"email": "not-an-email", "username": "ok_name", "password": STRONG_PASSWORD},
            "email",
            "is not in the expected form",
        ),
        (
            {"email": "a@example.com", "username": "no spaces", "password": STRONG_PASSWORD},
            "username",
            "is not in the expected form",
        ),
        (
            {"email": "a@example.com", "username": "x", "password": STRONG_PASSWORD},
            "username",
            "must be at least 3 characters long",
        ),
        ({"email": "a@example.com", "username": "okname"}, "password", "is required"),
        (
            {"email": "a@example.com", "username": "okname", "password": "p" * 300},
            "password",
            "must be at most 256 characters long",
        ),
        (
            {"email": 1, "username": "okname", "password": STRONG_PASSWORD},
            "email",
            "must be text, not a whole number",
        ),
        (
            {"email": "a@example.com", "username": "okname", "password": "x", "admin": True},
            "admin",
            "is not a field this takes",
        ),
    ],
)
async def test_a_bad_registration_is_refused_in_words_and_creates_no_account(
    client, gateway, body, field, words
) -> None:
    response = await client.post("/auth/register", json=body)
    assert_problem(response, 422)
    assert response.json()["errors"] == [{"field": field, "message": words}]
    assert await rows(gateway, User) == 0


async def test_an_oversized_json_body_is_refused(client, gateway, alice) -> None:
    huge = b'{"objective": "' + b"x" * (2 << 20) + b'"}'
    response = await client.post(
        "/tasks", headers={**alice.headers, "content-type": "application/json"}, content=huge
    )
    assert response.status_code == 413
    assert await rows(gateway, Task) == 0


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"limit": 0}, "must be at least 1"),
        ({"limit": 101}, "must be at most 100"),
        ({"limit": "many"}, None),
        ({"offset": -1}, "must be at least 0"),
        ({"status": "running"}, None),
        ({"q": "x" * 201}, "must be at most 200 characters long"),
    ],
)
async def test_bad_list_parameters_are_refused(client, alice, params, words) -> None:
    response = await client.get("/tasks", headers=alice.headers, params=params)
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] in params
    assert "`" not in error["message"]
    if words:
        assert error["message"] == words
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_unknown_routes_and_methods_are_problems_too(client, alice) -> None:
    assert_problem(await client.get("/no/such/route", headers=alice.headers), 404)
    assert_problem(await client.patch("/tasks", headers=alice.headers), 405)


async def test_a_login_with_the_wrong_shape_is_refused_without_counting(client, alice) -> None:
    for _ in range(8):
        response = await client.post("/auth/login", json={"login": "alice"})
        assert_problem(response, 422)
        assert response.json()["errors"][0]["field"] == "password"
    ok = await client.post("/auth/login", json={"login": "alice", "password": STRONG_PASSWORD})
    assert ok.status_code == 200
