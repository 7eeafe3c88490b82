"""Pairing a PC with a one-time code, listing and revoking it, and its connection."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from troika_gateway.db.models import PairingCode
from troika_shared.desktop import device_key
from troika_testkit import scaled, wait_for

from .conftest import assert_problem


async def new_code(client, account) -> str:
    made = await client.post("/devices/pairing-codes", headers=account.headers)
    assert made.status_code == 201, made.text
    body = made.json()
    assert datetime.fromisoformat(body["expires_at"]) > datetime.now(UTC)
    return body["code"]


async def paired(client, account, name: str = "laptop") -> dict:
    code = await new_code(client, account)
    answer = await client.post("/devices/pair", json={"code": code, "name": name, "platform": "x"})
    assert answer.status_code == 201, answer.text
    return answer.json()


def ws_url(gateway) -> str:
    return gateway.url.replace("http://", "ws://") + "/ws/desktop"


async def receive(socket) -> dict:
    return json.loads(await asyncio.wait_for(socket.recv(), scaled(5)))


async def closed_with(socket) -> int:
    """The close code the gateway ends the connection with (after any messages before it)."""
    try:
        while True:
            await asyncio.wait_for(socket.recv(), scaled(5))
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else -1


async def test_a_pc_pairs_once_with_its_code_and_is_listed_for_its_owner_only(
    client, gateway, alice, bob
) -> None:
    code = await new_code(client, alice)
    # typed by hand: lower case, without the dash
    answer = await client.post(
        "/devices/pair", json={"code": code.replace("-", "").lower(), "name": "Ada's laptop"}
    )
    assert answer.status_code == 201, answer.text
    device = answer.json()
    assert device["name"] == "Ada's laptop"
    expected = device_key(gateway.settings.seal_key(), device["device_id"]).hex()
    assert device["seal_key"] == expected
    assert len(device["token"]) >= 40

    again = await client.post("/devices/pair", json={"code": code, "name": "thief"})
    assert_problem(again, 404, "wrong, used or expired")

    mine = (await client.get("/devices", headers=alice.headers)).json()
    assert [(d["id"], d["name"], d["online"]) for d in mine] == [
        (device["device_id"], "Ada's laptop", False)
    ]
    assert "token" not in mine[0]
    assert (await client.get("/devices", headers=bob.headers)).json() == []
    theirs = await client.delete(f"/devices/{device['device_id']}", headers=bob.headers)
    assert_problem(theirs, 404)
    assert len((await client.get("/devices", headers=alice.headers)).json()) == 1


async def test_a_second_pc_of_the_same_name_gets_a_number(client, alice) -> None:
    first = await paired(client, alice, "laptop")
    second = await paired(client, alice, "laptop")
    assert (first["name"], second["name"]) == ("laptop", "laptop (2)")


async def test_an_expired_code_pairs_nothing(client, gateway, alice) -> None:
    code = await new_code(client, alice)
    async with gateway.app.state.sessionmaker() as db:
        await db.execute(
            update(PairingCode).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await db.commit()
    late = await client.post("/devices/pair", json={"code": code, "name": "laptop"})
    assert_problem(late, 404, "expired")
    assert (await client.get("/devices", headers=alice.headers)).json() == []


@pytest.mark.parametrize(
    "body",
    [
        {"name": "laptop"},
        {"code": "ABCD-EFGH"},
        {"code": "ABCD-EFGH", "name": ""},
        {"code": "ABCD-EFGH", "name": "bad\nname"},
        {"code": "ABCD-EFGH", "name": "x" * 65},
        {"code": "ABCD-EFGH", "name": "laptop", "admin": True},
    ],
    ids=["no code", "no name", "empty name", "control character", "long name", "unknown field"],
)
async def test_a_malformed_pairing_is_refused_plainly(client, body) -> None:
    answer = await client.post("/devices/pair", json=body)
    assert_problem(answer, 422)


async def test_pairing_codes_need_a_signed_in_person(client) -> None:
    assert_problem(await client.post("/devices/pairing-codes"), 401)
    assert_problem(await client.get("/devices"), 401)


async def test_the_connection_needs_a_live_credential_and_shows_the_pc_online(
    client, gateway, alice
) -> None:
    async with connect(ws_url(gateway)) as socket:
        await socket.send(json.dumps({"type": "hello", "token": "made-up"}))
        assert (await receive(socket))["type"] == "error"
        assert await closed_with(socket) == 4401

    device = await paired(client, alice)
    async with connect(ws_url(gateway)) as socket:
        await socket.send(json.dumps({"type": "hello", "token": device["token"]}))
        ready = await receive(socket)
        assert ready == {"type": "ready", "device_id": device["device_id"], "name": "laptop"}
        await socket.send(json.dumps({"type": "ping"}))
        assert (await receive(socket))["type"] == "pong"
        listed = (await client.get("/devices", headers=alice.headers)).json()
        assert listed[0]["online"] is True

    async def offline() -> bool:
        listed = (await client.get("/devices", headers=alice.headers)).json()
        return listed[0]["online"] is False

    await wait_for(offline, timeout=10, what="the PC shown offline")


async def test_a_revoked_pc_is_cut_off_at_once_and_for_good(client, gateway, alice) -> None:
    device = await paired(client, alice)
    async with connect(ws_url(gateway)) as socket:
        await socket.send(json.dumps({"type": "hello", "token": device["token"]}))
        assert (await receive(socket))["type"] == "ready"
        revoked = await client.delete(f"/devices/{device['device_id']}", headers=alice.headers)
        assert revoked.status_code == 204
        assert await closed_with(socket) == 4403
    assert (await client.get("/devices", headers=alice.headers)).json() == []
    async with connect(ws_url(gateway)) as socket:
        await socket.send(json.dumps({"type": "hello", "token": device["token"]}))
        assert (await receive(socket))["type"] == "error"
        assert await closed_with(socket) == 4401
    again = await client.delete(f"/devices/{device['device_id']}", headers=alice.headers)
    assert_problem(again, 404)


async def test_a_pc_connecting_again_replaces_its_older_connection(client, gateway, alice) -> None:
    device = await paired(client, alice)
    hello = json.dumps({"type": "hello", "token": device["token"]})
    async with connect(ws_url(gateway)) as first:
        await first.send(hello)
        assert (await receive(first))["type"] == "ready"
        async with connect(ws_url(gateway)) as second:
            await second.send(hello)
            assert (await receive(second))["type"] == "ready"
            assert await closed_with(first) == 4409
            await second.send(json.dumps({"type": "ping"}))
            assert (await receive(second))["type"] == "pong"
            listed = (await client.get("/devices", headers=alice.headers)).json()
            assert listed[0]["online"] is True, "the older connection's end left it online"


async def test_a_pc_connected_to_another_gateway_process_is_reached_there(
    client, gateway, settings, alice
) -> None:
    """Two API processes behind one address: the PC holds its connection on the second, the
    person revokes it through the first, and the second closes it at once."""
    import uvicorn  # noqa: PLC0415

    from troika_gateway.app import create_app  # noqa: PLC0415
    from troika_testkit.ports import free_port  # noqa: PLC0415

    port = free_port()
    other = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
    )
    serving = asyncio.create_task(other.serve())
    try:
        while not other.started:
            assert not serving.done(), "the second gateway did not start"
            await asyncio.sleep(0.01)
        device = await paired(client, alice)
        async with connect(f"ws://127.0.0.1:{port}/ws/desktop") as socket:
            await socket.send(json.dumps({"type": "hello", "token": device["token"]}))
            assert (await receive(socket))["type"] == "ready"
            listed = (await client.get("/devices", headers=alice.headers)).json()
            assert listed[0]["online"] is True, "the first process sees it online"
            revoked = await client.delete(f"/devices/{device['device_id']}", headers=alice.headers)
            assert revoked.status_code == 204
            assert await closed_with(socket) == 4403
    finally:
        other.should_exit = True
        await asyncio.wait_for(serving, scaled(15))
