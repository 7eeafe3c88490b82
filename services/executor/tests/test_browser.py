"""The browser tools against a real site on loopback, in the system's Chromium: logging in,
a two-step form with validation errors, a table, a download; the outbound guard on redirects
and on the requests a page makes; one isolated context per task, resumed on another replica."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from troika_executor.browser import Browsers
from troika_executor.browser.sessions import MARK
from troika_executor.handlers import sweep_browsers
from troika_executor.net import OutboundPolicy
from troika_executor.tools import Toolbox, run_tool
from troika_shared.browser import browser_folder, screen_path, seal_typed
from troika_shared.desktop import shot_path
from troika_shared.errors import DependencyUnavailable
from troika_testkit.procfs import processes_with_env
from troika_testkit.site import ORDERS, PASSWORD, REPORT, USERNAME, Site

pytestmark = pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists(), reason="the system's Chromium is not installed"
)
KEY = bytes(range(32))


@pytest.fixture(scope="module")
def site():
    with Site() as running:
        yield running


@pytest.fixture
async def toolbox(tmp_path, site):
    # The site is on loopback: the operator allows exactly its port, as for an intranet host.
    policy = OutboundPolicy.of([f"127.0.0.1:{site.port}"])
    browsers = Browsers(tmp_path, policy, state_key=KEY, max_contexts=2)
    yield Toolbox(tmp_path, policy, browsers=browsers)
    await browsers.close()


async def call(toolbox: Toolbox, tool: str, task: str = "task-1", **arguments):
    return await run_tool(toolbox, task, tool, arguments)


def environment_of(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


def chromium_processes(data_dir: Path) -> list[int]:
    """The Chromium processes (children too) started for this data folder."""
    return processes_with_env(MARK, str(data_dir))


async def test_signing_in_reading_a_table_and_downloading_the_report(toolbox, site, tmp_path):
    opened = await call(toolbox, "browser_open", url=f"{site.url}/orders")
    assert opened.ok, opened.error
    assert "Sign in" in opened.output  # not signed in: sent to the login page

    typed = await call(toolbox, "browser_fill", values={"Username": USERNAME, "Password": PASSWORD})
    assert typed.ok, typed.error
    assert PASSWORD not in typed.output
    assert f"(a password, {len(PASSWORD)} characters, hidden)" in typed.output
    clicked = await call(toolbox, "browser_click", role="button", name="Sign in")
    assert clicked.ok, clicked.error
    assert "Signed in as ada" in clicked.output

    await call(toolbox, "browser_click", role="link", name="Your orders")
    table = await call(toolbox, "browser_get_text")
    assert table.ok, table.error
    for order, item, quantity, total in ORDERS:
        assert f"{order}\t{item}\t{quantity}\t{total}" in table.output
    assert f"Download the report: {site.url}/report.csv" in table.output

    got = await call(toolbox, "browser_download", text="Download the report")
    assert got.ok, got.error
    assert got.files == ("downloads/orders-report.csv",)
    assert (tmp_path / "workspaces/task-1/downloads/orders-report.csv").read_bytes() == REPORT

    # the page's cookies are stored sealed: the session id is nowhere on disk in clear
    stored = (tmp_path / "workspaces/task-1/.browser/state.json").read_text()
    assert "sid" not in stored
    assert PASSWORD not in stored


async def test_a_two_step_form_shows_its_validation_errors_until_it_is_right(toolbox, site):
    await call(toolbox, "browser_open", task="apply", url=f"{site.url}/apply")
    await call(toolbox, "browser_fill", task="apply",
               values={"Full name": "Grace Hopper", "E-mail": "grace.example.com"})  # fmt: skip
    wrong = await call(toolbox, "browser_click", task="apply", text="Next")
    assert wrong.ok, wrong.error
    assert "Please enter a valid e-mail address." in wrong.output
    assert "Full name [text] = Grace Hopper" in wrong.output  # what it kept

    await call(toolbox, "browser_fill", task="apply", values={"email": "grace@example.com"})
    second = await call(toolbox, "browser_press", task="apply", key="Enter", field="E-mail")
    assert "Apply: step 2 of 2" in second.output, second.output

    no_plan = await call(toolbox, "browser_click", task="apply", role="button",
                         name="Send application")  # fmt: skip
    assert "Please choose a plan." in no_plan.output
    chosen = await call(toolbox, "browser_select", task="apply", field="Plan", options=["Pro"])
    assert chosen.ok, chosen.error
    await call(toolbox, "browser_fill", task="apply", values={"Comments": "Nightly builds"})
    sent = await call(toolbox, "browser_click", task="apply", role="button",
                      name="Send application")  # fmt: skip
    assert "Thank you, Grace Hopper." in sent.output
    assert site.applications[-1] == {
        "full_name": "Grace Hopper", "email": "grace@example.com", "plan": "pro",
        "comments": "Nightly builds",
    }  # fmt: skip


async def test_redirects_and_requests_to_the_machine_or_metadata_are_refused(toolbox, site):
    before = site.forbidden_hits
    loopback = await call(toolbox, "browser_open", url=f"{site.url}/to-loopback")
    assert not loopback.ok
    assert "refused" in loopback.error
    assert f"127.0.0.1:{site.forbidden_port}" in loopback.output

    metadata = await call(toolbox, "browser_open", url=f"{site.url}/to-metadata")
    assert not metadata.ok
    assert "169.254.169.254" in metadata.error

    direct = await call(toolbox, "browser_open", url=f"http://127.0.0.1:{site.forbidden_port}/")
    assert not direct.ok
    assert "refused" in direct.error

    leaky = await call(toolbox, "browser_open", url=f"{site.url}/leaky")
    assert leaky.ok, leaky.error
    # Listed with what the page was refused (a late refusal from an earlier page may come first).
    [refused] = [line for line in leaky.output.splitlines() if line.startswith("Refused (")]
    assert refused.startswith("Refused (not a public address): ")
    assert f"127.0.0.1:{site.forbidden_port} (" in refused
    await asyncio.sleep(0.5)  # the page's script has run by now
    text = await call(toolbox, "browser_get_text")
    assert "fetch blocked" in text.output
    assert site.forbidden_hits == before  # nothing reached it


async def test_two_tasks_browsing_the_same_site_never_share_cookies(toolbox, site):
    await asyncio.gather(
        call(toolbox, "browser_open", task="of-alice", url=f"{site.url}/visit?name=alice"),
        call(toolbox, "browser_open", task="of-bob", url=f"{site.url}/visit?name=bob"),
    )
    alice, bob = await asyncio.gather(
        call(toolbox, "browser_open", task="of-alice", url=f"{site.url}/whoami"),
        call(toolbox, "browser_open", task="of-bob", url=f"{site.url}/whoami"),
    )
    assert "You are alice." in alice.output
    assert "You are bob." in bob.output


async def test_another_replica_carries_on_signed_in_where_the_page_was(toolbox, site, tmp_path):
    await call(toolbox, "browser_open", url=f"{site.url}/login")
    await call(toolbox, "browser_fill", values={"Username": USERNAME, "Password": PASSWORD})
    await call(toolbox, "browser_click", role="button", name="Sign in")

    other = Browsers(tmp_path, toolbox.outbound, state_key=KEY)
    try:
        replica = Toolbox(tmp_path, toolbox.outbound, browsers=other)
        text = await call(replica, "browser_get_text")
        assert "Signed in as ada" in text.output  # the same address, the same session
        await call(replica, "browser_open", url=f"{site.url}/whoami")
    finally:
        await other.close()
    # back on the first replica: its page is older than the stored one, so it is rebuilt
    again = await call(toolbox, "browser_get_text")
    assert "Who am I" in again.output


async def test_a_full_replica_makes_room_or_asks_the_step_to_wait(tmp_path, site):
    policy = OutboundPolicy.of([f"127.0.0.1:{site.port}"])
    browsers = Browsers(tmp_path, policy, state_key=KEY, max_contexts=1, wait_s=0.3)
    toolbox = Toolbox(tmp_path, policy, browsers=browsers)
    try:
        await call(toolbox, "browser_open", task="one", url=f"{site.url}/visit?name=one")
        await call(toolbox, "browser_open", task="two", url=f"{site.url}/visit?name=two")
        assert browsers.open_tasks == ["two"]  # "one" made room, its state kept
        again = await call(toolbox, "browser_open", task="one", url=f"{site.url}/whoami")
        assert "You are one." in again.output

        async with browsers.use("one"):  # busy: a third task cannot get a slot
            with pytest.raises(DependencyUnavailable, match="browser slots"):
                await call(toolbox, "browser_open", task="three", url=site.url)
    finally:
        await browsers.close()
    assert chromium_processes(tmp_path) == []


async def test_a_stopped_task_loses_its_page_and_chromium_closes(tmp_path, site):
    policy = OutboundPolicy.of([f"127.0.0.1:{site.port}"])
    browsers = Browsers(tmp_path, policy, state_key=KEY)
    toolbox = Toolbox(tmp_path, policy, browsers=browsers)
    await call(toolbox, "browser_open", task="done", url=f"{site.url}/visit?name=x")
    await call(toolbox, "browser_open", task="going", url=f"{site.url}/visit?name=y")
    assert chromium_processes(tmp_path)

    async def stopped(task_id: str) -> bool:
        return task_id == "done"

    assert await browsers.sweep(stopped) == 1
    assert not (tmp_path / "workspaces/done/.browser").exists()
    assert browsers.open_tasks == ["going"]
    browsers.idle_s = 0
    await browsers.sweep(stopped)
    assert browsers.open_tasks == []
    assert chromium_processes(tmp_path) == []  # no page left: Chromium closed
    await browsers.close()


async def test_the_screenshot_is_saved_in_the_task_folder_and_close_forgets_the_cookies(
    toolbox, site, tmp_path
):
    await call(toolbox, "browser_open", url=f"{site.url}/visit?name=carol")
    shot = await call(toolbox, "browser_screenshot")
    assert shot.files == ("screenshots/page-1.png",)
    png = (tmp_path / "workspaces/task-1/screenshots/page-1.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    closed = await call(toolbox, "browser_close")
    assert closed.ok
    assert not (tmp_path / "workspaces/task-1/.browser").exists()
    again = await call(toolbox, "browser_open", url=f"{site.url}/whoami")
    assert "You are nobody." in again.output


async def test_chromium_gets_no_secret_from_the_executor(toolbox, site, tmp_path, monkeypatch):
    monkeypatch.setenv("TROIKA_SECRET_KEY", "do-not-leak-7731")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-leak")
    await call(toolbox, "browser_open", url=site.url)
    environments = [environment_of(pid) for pid in chromium_processes(tmp_path)]
    assert environments
    assert not any(b"do-not-leak" in env for env in environments)
    assert json.dumps(os.environ.get("TROIKA_SECRET_KEY")) != "null"


async def test_without_chromium_a_call_fails_saying_what_is_missing(tmp_path) -> None:
    browsers = Browsers(tmp_path, OutboundPolicy(), executable=str(tmp_path / "no-chromium"))
    toolbox = Toolbox(tmp_path, OutboundPolicy(), browsers=browsers)
    outcome = await call(toolbox, "browser_open", url="https://example.org/")
    assert not outcome.ok
    assert "need Chromium at" in outcome.error
    assert "TROIKA_BROWSER_EXECUTABLE" in outcome.error
    await browsers.close()


async def test_handing_the_page_over_pauses_for_the_person_with_the_screenshot(
    tmp_path, site
) -> None:
    policy = OutboundPolicy.of([f"127.0.0.1:{site.port}"])
    browsers = Browsers(tmp_path, policy, state_key=KEY)
    toolbox = Toolbox(tmp_path, policy, browsers=browsers, images=True)
    try:
        await call(toolbox, "browser_open", url=f"{site.url}/login")
        handed = await call(toolbox, "browser_hand_over", message="Please solve the captcha")
    finally:
        await browsers.close()
    assert not handed.ok
    assert handed.needs_person  # the task pauses for the person instead of the agent retrying
    assert "Please solve the captcha" in handed.error
    assert f"Sign in — {site.url}/login" in handed.error
    [shot] = handed.images  # the page, for a model that reads images and for the person
    assert shot_path(tmp_path, "task-1", shot).read_bytes().startswith(b"\x89PNG")
    assert screen_path(tmp_path, "task-1").read_bytes().startswith(b"\x89PNG")


async def test_the_executors_sweep_closes_the_pages_of_tasks_that_stopped(tmp_path, site) -> None:
    policy = OutboundPolicy.of([f"127.0.0.1:{site.port}"])
    browsers = Browsers(tmp_path, policy, state_key=KEY)
    toolbox = Toolbox(tmp_path, policy, browsers=browsers)
    await call(toolbox, "browser_open", task="cancelled", url=f"{site.url}/visit?name=x")
    quit_sweeping = asyncio.Event()

    async def stopped(task_id: str) -> bool:
        return task_id == "cancelled"

    sweeping = asyncio.create_task(sweep_browsers(browsers, stopped, quit_sweeping, every_s=0.05))
    try:
        for _ in range(100):
            if not browsers.open_tasks:
                break
            await asyncio.sleep(0.05)
    finally:
        quit_sweeping.set()
        await sweeping
        await browsers.close()
    assert browsers.open_tasks == []
    assert not browser_folder(tmp_path, "cancelled").exists()  # its cookies are gone


async def test_a_sealed_password_is_opened_only_to_be_typed(toolbox, site) -> None:
    await call(toolbox, "browser_open", task="sealed", url=f"{site.url}/login")
    sealed = seal_typed(KEY, "sealed", PASSWORD)
    typed = await call(toolbox, "browser_fill", task="sealed",
                       values={"Username": USERNAME, "Password": sealed})  # fmt: skip
    assert typed.ok, typed.error
    assert PASSWORD not in typed.output
    signed_in = await call(toolbox, "browser_click", task="sealed", role="button", name="Sign in")
    assert "Signed in as ada" in signed_in.output

    await call(toolbox, "browser_open", task="sealed", url=f"{site.url}/login")
    elsewhere = seal_typed(KEY, "another-task", PASSWORD)
    other_task = await call(toolbox, "browser_fill", task="sealed", values={"Password": elsewhere})
    assert not other_task.ok  # sealed for another task: it does not open here
    assert "could not be opened" in other_task.error
