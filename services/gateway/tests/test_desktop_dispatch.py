"""The worker's side of desktop actions: an approved desktop call becomes an action sealed for
the person's PC (or fails plainly when they have none), waits while the PC is offline, and
pauses its task when the PC stays away."""

from __future__ import annotations

from troika_gateway.desktop.dispatch import DesktopWaits
from troika_shared.desktop import device_key, seal_action
from troika_shared.messages import DesktopAction, DesktopResult, ToolCall, ToolOutcome, derive_id

from .test_devices import paired
from .test_pipeline_rules import Driver
from .test_tasks import create

TYPE = {"text": "Grüße 東京"}


def typing(**arguments) -> ToolCall:
    args = arguments or TYPE
    return ToolCall(key=derive_id("desktop", str(args)), tool="desktop_type_text", arguments=args)


async def events(client, account, task_id: str) -> list[dict]:
    page = await client.get(f"/tasks/{task_id}/events", headers=account.headers)
    return page.json()["events"]


async def started(gateway, client, account) -> Driver:
    task = await create(client, account, "Type a greeting on my PC")
    driver = Driver(gateway, client, account, task["id"])
    await driver.plan()
    return driver


async def test_an_approved_call_becomes_an_action_sealed_for_the_persons_pc(
    gateway, client, alice
) -> None:
    device = await paired(client, alice, "laptop")
    d = await started(gateway, client, alice)
    [step] = [await d.last_step()]
    assert "desktop_type_text" in step.tool_names
    await d.propose(typing())
    [asked] = await d.respond()
    assert asked["prompt"]["tool"] == "desktop_type_text"
    [action] = await d.commands(DesktopAction)
    assert (action.device_id, action.device_name, action.call.arguments) == (
        device["device_id"], "laptop", TYPE
    )  # fmt: skip
    key = bytes.fromhex(device["seal_key"])
    assert action.seal == seal_action(
        key, device_id=device["device_id"], task_id=d.task_id, call_key=action.call.key,
        tool="desktop_type_text", arguments=TYPE,
    )  # fmt: skip
    assert key == device_key(gateway.settings.seal_key(), device["device_id"])
    waiting = [e for e in await events(client, alice, d.task_id) if e["kind"] == "desktop.waiting"]
    assert [w["data"]["device"] for w in waiting] == ["laptop"], "the PC is offline: said so"

    result = DesktopResult(
        correlation_id=d.task_id, user_id="ignored", subtask_id=action.subtask_id,
        device_id=device["device_id"], key=action.call.key,
        outcome=ToolOutcome(ok=True, output="typed 10 characters"),
    )  # fmt: skip
    await d.router.dispatch(result)
    finished = [e for e in await events(client, alice, d.task_id) if e["kind"] == "tool.finished"]
    assert finished[-1]["data"]["output"] == "typed 10 characters"


async def test_without_a_paired_pc_the_call_fails_saying_how_to_pair(
    gateway, client, alice
) -> None:
    d = await started(gateway, client, alice)
    step = await d.last_step()
    assert "desktop_type_text" not in step.tool_names, "offered without a PC"
    await d.propose(typing())  # proposed all the same, by name
    await d.respond()
    assert await d.commands(DesktopAction) == []
    [failed] = [m for m in await d.commands(object) if type(m).__name__ == "ToolResult"]
    assert failed.outcome.ok is False
    assert "no PC is paired with your account" in failed.outcome.error


async def test_a_named_pc_that_does_not_exist_is_said_plainly(gateway, client, alice) -> None:
    await paired(client, alice, "laptop")
    d = await started(gateway, client, alice)
    await d.propose(typing(text="hi", device="office"))
    await d.respond()
    [failed] = [m for m in await d.commands(object) if type(m).__name__ == "ToolResult"]
    assert failed.outcome.error == "you have no PC named 'office' (your PCs: 'laptop')"


async def test_an_action_whose_pc_stays_offline_pauses_its_task_to_ask(
    gateway, client, alice
) -> None:
    await paired(client, alice, "laptop")
    d = await started(gateway, client, alice)
    await d.propose(typing())
    await d.respond()
    settings = gateway.settings.model_copy(update={"desktop_wait_s": 0.0})
    waits = DesktopWaits(gateway.app.state.sessionmaker, settings, gateway.app.state.store)
    [given_up] = await waits.sweep()
    task = await d.task()
    assert task["status"] == "needs_guidance"
    assert task["status_reason"].startswith("desktop_type_text needs you: your PC did not connect")
    assert await waits.sweep() == [], "given up once"
    assert given_up == typing().key


async def test_screenshots_wait_five_minutes_at_most_and_go_with_their_task(tmp_path) -> None:
    import stat  # noqa: PLC0415

    import pytest  # noqa: PLC0415

    from troika_gateway.desktop.shots import ShotArea  # noqa: PLC0415
    from troika_shared.desktop import shot_age, shot_path  # noqa: PLC0415
    from troika_shared.files import LocalStore  # noqa: PLC0415

    store = LocalStore(tmp_path / "workspaces")  # the folder the executors read on one machine
    area = ShotArea(store, tmp_path / "staging")
    png = b"\x89PNG\r\n\x1a\n" + b"x" * 10
    kept = await area.keep("task1", png)
    other = await area.keep("task2", png)
    path = shot_path(tmp_path, "task1", kept)
    assert path.read_bytes() == png  # where the executor's step looks for it
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(await store.list("task1")) == [f".shots/{kept}"]  # hidden: never listed as a file
    assert list((tmp_path / "staging").iterdir()) == []
    with pytest.raises(ValueError, match="PNG"):
        await area.keep("task1", b"GIF89a")
    with pytest.raises(ValueError, match="not a screenshot"):
        shot_path(tmp_path, "../etc", "passwd")
    await store.write("task1", "report.md", path)  # the task's own files are left alone

    now = -shot_age(kept, now=0)  # the time it was taken, as its name says
    both = {"task1": False, "task2": False}
    assert await area.sweep(both, now=now + 299) == 0
    assert await area.sweep({"task1": False, "task2": True}, now=now + 1) == 1  # ended: gone
    assert not shot_path(tmp_path, "task2", other).exists()
    assert await area.sweep(both, now=now + 300) == 1  # five minutes old: gone
    assert list(await store.list("task1")) == ["report.md"]


async def test_only_the_pc_an_action_is_for_keeps_it_waiting(gateway, client, alice) -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    from sqlalchemy import update  # noqa: PLC0415

    from troika_gateway.db.models import Device  # noqa: PLC0415

    laptop = await paired(client, alice, "laptop")
    office = await paired(client, alice, "office")
    d = await started(gateway, client, alice)
    await d.propose(typing(text="hi", device="laptop"))
    await d.respond()
    settings = gateway.settings.model_copy(update={"desktop_wait_s": 0.0})
    waits = DesktopWaits(gateway.app.state.sessionmaker, settings, gateway.app.state.store)

    async def connected(device: dict, *, now: bool) -> None:
        async with gateway.app.state.sessionmaker() as db:
            await db.execute(
                update(Device)
                .where(Device.id == device["device_id"])
                .values(connected=now, last_seen_at=datetime.now(UTC))
            )
            await db.commit()

    await connected(laptop, now=True)
    assert await waits.sweep() == [], "its PC is connected: the action is on its way"
    await connected(laptop, now=False)
    await connected(office, now=True)  # another PC of hers is there; not the one it is for
    assert await waits.sweep() == [typing(text="hi", device="laptop").key]
    assert (await d.task())["status"] == "needs_guidance"
