"""Every row belongs to a user: another user's things answer 404 and never show in lists."""

from __future__ import annotations

import pytest

from troika_gateway.db.models import Interaction

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
    assert still.json()["status"] == "planning"


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


async def add_interaction(gateway, task_id: str, user_id: str, status: str = "pending") -> str:
    async with gateway.app.state.sessionmaker() as db:
        row = Interaction(
            user_id=user_id,
            task_id=task_id,
            kind="approval",
            status=status,
            prompt={"tool": "send_email", "arguments": {"to": "john@example.com"}},
        )
        db.add(row)
        await db.commit()
        return row.id


async def test_interactions_are_private_to_their_owner(client, gateway, alice, bob, alices_task):
    me = (await client.get("/auth/me", headers=alice.headers)).json()
    pending = await add_interaction(gateway, alices_task["id"], me["id"])
    await add_interaction(gateway, alices_task["id"], me["id"], status="approved")

    mine = (await client.get("/interactions/pending", headers=alice.headers)).json()
    assert [(i["id"], i["kind"], i["prompt"]["tool"]) for i in mine] == [
        (pending, "approval", "send_email")
    ]
    only_task = await client.get(
        "/interactions/pending", headers=alice.headers, params={"task_id": alices_task["id"]}
    )
    assert [i["id"] for i in only_task.json()] == [pending]
    assert (await client.get(f"/interactions/{pending}", headers=alice.headers)).status_code == 200

    assert (await client.get("/interactions/pending", headers=bob.headers)).json() == []
    assert_problem(
        await client.get(f"/interactions/{pending}", headers=bob.headers),
        404,
        "no such interaction",
    )
    theirs = await client.get(
        "/interactions/pending", headers=bob.headers, params={"task_id": alices_task["id"]}
    )
    assert theirs.json() == []
