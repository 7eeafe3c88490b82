"""The live view over WebSocket: authenticated by the first message, resumable, private."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from troika_gateway import live
from troika_shared.messages import TaskEvent as OneTaskEvent
from troika_testkit import scaled

from .conftest import STRONG_PASSWORD
from .test_tasks import create


def ws_url(gateway) -> str:
    return gateway.url.replace("http://", "ws://") + "/ws"


async def receive(socket, timeout: float = 5.0) -> dict:
    return json.loads(await asyncio.wait_for(socket.recv(), scaled(timeout)))


async def events_until(socket, task_id: str, last_seq: int) -> list[int]:
    """The seqs received for a task until ``last_seq`` arrives."""
    seen = []
    while not seen or seen[-1] < last_seq:
        message = await receive(socket)
        if message["type"] == "event" and message["task_id"] == task_id:
            seen.append(message["seq"])
    return seen


async def nothing_more(socket, wait: float = 0.5) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(socket.recv(), wait)


async def open_live(gateway, account, resume=None):
    socket = await connect(ws_url(gateway))
    await socket.send(
        json.dumps(
            {"type": "auth", "token": account.tokens["access_token"], "resume": resume or {}}
        )
    )
    ready = await receive(socket)
    assert ready == {"type": "ready", "user_id": ready["user_id"]}
    return socket


async def rename(client, account, task_id, title):
    response = await client.put(f"/tasks/{task_id}", headers=account.headers, json={"title": title})
    assert response.status_code == 200


async def test_events_arrive_live_as_they_happen(client, gateway, alice) -> None:
    socket = await open_live(gateway, alice)
    try:
        task = await create(client, alice)
        created = await receive(socket)
        assert (created["type"], created["task_id"], created["seq"], created["kind"]) == (
            "event",
            task["id"],
            1,
            "task.created",
        )
        requested = await receive(socket)
        assert (requested["seq"], requested["kind"]) == (2, "plan.requested")
        planning = await receive(socket)
        assert (planning["seq"], planning["kind"]) == (3, "task.status")
        assert planning["data"]["status"] == "planning"
        await rename(client, alice, task["id"], "Tesla")
        renamed = await receive(socket)
        assert (renamed["seq"], renamed["kind"], renamed["data"]) == (
            4,
            "task.renamed",
            {"title": "Tesla"},
        )
    finally:
        await socket.close()


async def test_a_reconnecting_client_resumes_without_gaps_or_duplicates(
    client, gateway, alice
) -> None:
    task = await create(client, alice)
    socket = await open_live(gateway, alice, resume={task["id"]: 0})
    assert await events_until(socket, task["id"], 3) == [1, 2, 3]
    await rename(client, alice, task["id"], "one")
    assert await events_until(socket, task["id"], 4) == [4]
    await socket.close()

    for title in ("two", "three", "four"):  # while the client is away
        await rename(client, alice, task["id"], title)

    socket = await open_live(gateway, alice, resume={task["id"]: 4})
    try:
        assert await events_until(socket, task["id"], 7) == [5, 6, 7]
        await rename(client, alice, task["id"], "five")
        assert await events_until(socket, task["id"], 8) == [8]
        await nothing_more(socket)
    finally:
        await socket.close()


async def test_resume_can_be_asked_for_after_connecting(client, gateway, alice) -> None:
    task = await create(client, alice)
    for title in ("a", "b"):
        await rename(client, alice, task["id"], title)
    socket = await open_live(gateway, alice)
    try:
        await socket.send(json.dumps({"type": "resume", "task_id": task["id"], "after": 1}))
        assert await events_until(socket, task["id"], 5) == [2, 3, 4, 5]
        await socket.send(json.dumps({"type": "ping"}))
        assert await receive(socket) == {"type": "pong"}
    finally:
        await socket.close()


async def test_one_event_messages_of_an_older_gateway_still_arrive(client, gateway, alice) -> None:
    task = await create(client, alice)
    socket = await open_live(gateway, alice, resume={task["id"]: 0})
    try:
        assert await events_until(socket, task["id"], 3) == [1, 2, 3]
        user_id = (await client.get("/auth/me", headers=alice.headers)).json()["id"]
        older = OneTaskEvent(correlation_id=task["id"], user_id=user_id, seq=4,
                             kind="task.renamed", data={"title": "older"})  # fmt: skip
        await gateway.app.state.bus.announce(older)
        event = await receive(socket)
        assert (event["seq"], event["kind"], event["data"]) == (
            4,
            "task.renamed",
            {"title": "older"},
        )
        await gateway.app.state.bus.announce(older)  # a second copy is not sent again
        await nothing_more(socket)
    finally:
        await socket.close()


async def test_another_users_events_never_arrive(client, gateway, alice, bob) -> None:
    alices = await create(client, alice)
    socket = await open_live(gateway, bob)
    try:
        await rename(client, alice, alices["id"], "private")
        await socket.send(json.dumps({"type": "resume", "task_id": alices["id"], "after": 0}))
        refused = await receive(socket)
        assert refused == {"type": "error", "detail": "no such task", "task_id": alices["id"]}
        bobs = await create(client, bob)
        assert await events_until(socket, bobs["id"], 3) == [1, 2, 3]
        await nothing_more(socket)
    finally:
        await socket.close()


@pytest.mark.parametrize(
    "first",
    [
        {"type": "auth", "token": "forged.token.value"},
        {"type": "resume", "task_id": "x"},
        "not json",
    ],
)
async def test_a_connection_without_valid_credentials_is_closed(gateway, first) -> None:
    async with connect(ws_url(gateway)) as socket:
        await socket.send(first if isinstance(first, str) else json.dumps(first))
        error = await receive(socket)
        assert error["type"] == "error"
        with pytest.raises(ConnectionClosed) as closed:
            await receive(socket)
    assert closed.value.rcvd.code == live.CLOSE_UNAUTHORIZED


async def test_a_token_in_the_url_is_not_accepted(gateway, alice) -> None:
    url = ws_url(gateway) + f"?token={alice.tokens['access_token']}"
    async with connect(url) as socket:
        await socket.send(json.dumps({"type": "ping"}))
        assert (await receive(socket))["type"] == "error"


async def test_silence_instead_of_credentials_is_closed(gateway, monkeypatch) -> None:
    monkeypatch.setattr(live, "AUTH_TIMEOUT_S", 0.3)
    async with connect(ws_url(gateway)) as socket:
        error = await receive(socket)
        assert "authenticate first" in error["detail"]
        with pytest.raises(ConnectionClosed):
            await receive(socket)


async def test_signing_out_ends_the_live_connection_at_once(client, gateway, alice) -> None:
    assert live.REVOCATION_CHECK_S >= 30  # the regular check would come too late
    socket = await open_live(gateway, alice)
    await client.post("/auth/logout", headers=alice.headers)
    error = await receive(socket, timeout=5)
    assert "session has ended" in error["detail"]
    with pytest.raises(ConnectionClosed) as closed:
        await receive(socket)
    assert closed.value.rcvd.code == live.CLOSE_UNAUTHORIZED


async def test_a_new_password_ends_the_other_sessions_live_connections(
    client, gateway, alice
) -> None:
    socket = await open_live(gateway, alice)
    other = await client.post("/auth/login", json={"login": "alice", "password": STRONG_PASSWORD})
    headers = {"Authorization": f"Bearer {other.json()['access_token']}"}
    changed = await client.put("/auth/password", headers=headers, json={
        "current_password": STRONG_PASSWORD, "new_password": "another long pass phrase 7",
    })  # fmt: skip
    assert changed.status_code == 204, changed.text
    error = await receive(socket, timeout=5)
    assert "session has ended" in error["detail"]
