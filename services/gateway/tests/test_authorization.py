"""Every row belongs to a user: another user's things answer 404 and never show in lists."""

from __future__ import annotations

import pytest

from .conftest import assert_problem
from .test_tasks import create


@pytest.fixture
async def alices_task(client, alice):
    task = await create(client, alice, "Alice's private objective")
    await client.post(
        f"/tasks/{task['id']}/files",
        headers=alice.headers,
        files={"files": ("secret.txt", b"s3cret")},
    )
    return task


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "", None),
        ("PUT", "", {"title": "mine now"}),
        ("DELETE", "", None),
        ("POST", "/cancel", None),
        ("POST", "/rerun", None),
        ("POST", "/continue", {"objective": "steal"}),
        ("POST", "/guidance", {"text": "x"}),
        ("GET", "/events", None),
        ("GET", "/files", None),
        ("GET", "/files/secret.txt", None),
    ],
)
async def test_another_users_task_is_not_found(client, bob, alices_task, alice, method, path, body):
    url = f"/tasks/{alices_task['id']}{path}"
    response = await client.request(method, url, headers=bob.headers, json=body)
    assert_problem(response, 404, "no such task")
    still = await client.get(f"/tasks/{alices_task['id']}", headers=alice.headers)
    assert still.status_code == 200
    assert still.json()["title"] == alices_task["title"]
    assert still.json()["status"] == "queued"


async def test_another_user_cannot_upload_into_my_task(client, bob, alice, alices_task) -> None:
    response = await client.post(
        f"/tasks/{alices_task['id']}/files",
        headers=bob.headers,
        files={"files": ("evil.txt", b"x")},
    )
    assert_problem(response, 404)
    names = [
        f["name"]
        for f in (
            await client.get(f"/tasks/{alices_task['id']}/files", headers=alice.headers)
        ).json()
    ]
    assert names == ["secret.txt"]


async def test_lists_show_only_my_tasks(client, alice, bob, alices_task) -> None:
    bobs = await create(client, bob, "Bob's objective")
    mine = (await client.get("/tasks", headers=bob.headers)).json()
    assert [t["id"] for t in mine["items"]] == [bobs["id"]]
    searched = (await client.get("/tasks", headers=bob.headers, params={"q": "Alice"})).json()
    assert searched["total"] == 0
