"""The client package (``troika_client``) against a real gateway: what the CLI, the web app and
the test kit rely on when they sign in, call the API and follow the live feed."""

from __future__ import annotations

import asyncio
import contextlib
import stat

import pytest

from troika_client import ApiError, FileTokenStore, Gateway, LiveEvent, LiveFeed, Session
from troika_shared.task_events import TaskCreated, TaskRenamed
from troika_testkit import scaled
from troika_testkit.ports import free_port

from .conftest import STRONG_PASSWORD


async def signed_up(gateway, name: str, store=None) -> Session:
    session = Session.open(gateway.url, store=store)
    await session.register(f"{name}@example.com", name, STRONG_PASSWORD)
    return session


async def test_a_kept_session_signs_in_again_without_the_password(gateway, tmp_path) -> None:
    store = FileTokenStore(tmp_path / "troika" / "session.json")
    async with await signed_up(gateway, "keeper", store) as first:
        me = await first.get("/auth/me")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600  # only its owner can read it

    async with Session.open(gateway.url, store=store) as later:
        assert await later.resume()
        assert (await later.get("/auth/me"))["id"] == me["id"]
    async with Session.open("http://127.0.0.1:1", store=store) as elsewhere:
        assert not await elsewhere.resume()  # a session is kept for its own gateway only


async def test_an_expired_access_token_is_renewed_once_for_calls_made_together(gateway) -> None:
    async with await signed_up(gateway, "renewer") as session:
        task = await session.post("/tasks", {"objective": "Notes"})
        session.access_token = "not.a-token"  # as if it had expired

        # refresh tokens are single-use: three calls at once must share one renewal
        seen = await asyncio.gather(*(session.get(f"/tasks/{task['id']}") for _ in range(3)))
        assert [found["id"] for found in seen] == [task["id"]] * 3
        assert session.access_token != "not.a-token"

        await session.logout()
        with pytest.raises(ApiError) as refused:
            await session.get("/tasks")
    assert refused.value.status == 401


async def test_a_refusal_says_which_field_was_wrong(gateway) -> None:
    async with Session.open(gateway.url) as session:
        with pytest.raises(ApiError) as refused:
            await session.register("not-an-address", "ok_name", STRONG_PASSWORD)
    assert 400 <= refused.value.status < 500
    assert "email" in refused.value.message
    assert not session.access_token


async def test_an_unreachable_gateway_is_a_503_not_a_crash() -> None:
    async with Gateway(f"http://127.0.0.1:{free_port()}", timeout=scaled(5)) as gateway:
        with pytest.raises(ApiError) as refused:
            await gateway.call("GET", "/health")
    assert refused.value.status == 503
    async with Gateway("http://127.0.0.1:1") as gateway:
        with pytest.raises(ValueError, match="not a path on the gateway"):
            await gateway.call("GET", "https://elsewhere.example/")


async def test_the_live_feed_delivers_typed_events_once_and_replays_what_it_missed(
    gateway,
) -> None:
    async with await signed_up(gateway, "watcher") as session:
        before = await session.post("/tasks", {"objective": "Made before the feed"})
        feed = LiveFeed(session.ws_url, session.token, {before["id"]: 0}, retry_s=0.1)
        seen: list[LiveEvent] = []
        renamed = asyncio.Event()

        async def follow() -> None:
            async for event in feed.events():
                seen.append(event)
                if isinstance(event.body(), TaskRenamed):
                    renamed.set()

        def of(task_id: str) -> list[LiveEvent]:
            return [event for event in seen if event.task_id == task_id]

        follower = asyncio.create_task(follow())
        try:
            await asyncio.wait_for(feed.connected.wait(), scaled(10))
            after = await session.post("/tasks", {"objective": "Made while it listens"})
            await session.call("PUT", f"/tasks/{after['id']}", json={"title": "Renamed"})
            await asyncio.wait_for(renamed.wait(), scaled(10))
            # a page that has read the log up to the first event asks for the rest
            await feed.resume(after["id"], 1)
            await asyncio.sleep(0.3)
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        log = await session.get(f"/tasks/{before['id']}/events")

    assert seen[0].kind == "live.connected"
    replayed = of(before["id"])  # events from before the feed, replayed from its cursor
    assert [e.seq for e in replayed] == [e["seq"] for e in log["events"]]
    assert isinstance(replayed[0].body(), TaskCreated)
    live = of(after["id"])
    assert [e.seq for e in live] == list(range(1, len(live) + 1))  # once each, in order
    assert next(e.body() for e in live if e.kind == "task.renamed") == TaskRenamed(title="Renamed")
