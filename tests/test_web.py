"""The web app in a real browser against the real stack: ``troika up`` with the scripted LLM.

One ``troika up`` serves all of them (its web app builds once; module-scoped, so it stops before
the next module's stacks start on this worker); each test signs up its own person and
drives the system's Chromium the way a person would, the main story and the lost connection in
Firefox too. The browsers reach the web app through a proxy a test can cut, as a network that goes
away would. Screenshots of every step go to ``var/screenshots/<test>/``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from openpyxl import Workbook
from playwright.async_api import expect

from troika_testkit import scaled, wait_for
from troika_testkit.agents import llm_env, plan_answer
from troika_testkit.browser import BROWSERS, VIEWPORT, new_context, readable
from troika_testkit.llm import Later, ScriptedLLM
from troika_testkit.mail import MailServer
from troika_testkit.ports import free_port
from troika_testkit.proxy import CuttableProxy
from troika_testkit.site import PASSWORD as SITE_PASSWORD
from troika_testkit.site import USERNAME, Site
from troika_testkit.social import Platforms

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PASSWORD = "correct horse battery staple"
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
CSV = "region,amount\nnorth,10\nsouth,5\nnorth,7\n"
PNG = bytes.fromhex(  # one pixel
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
BROWSER_ADDRESS = "127.0.0.77"  # where the web app sees the browsers come from
MUDDLE = threading.Event()  # the "[pause]" task's second subtask answers once this is set


def _objective(request: dict) -> str:
    return "\n".join(str(m.get("content", "")) for m in request["messages"])


def plan_script(request: dict) -> dict:
    """The planner: one subtask whose name says which test asked."""
    text = _objective(request)
    if "[triple]" in text:  # three subtasks side by side, which will ask for the same call
        hints = ["create_file"]
        return plan_answer(*((f"triple{n}", [], hints) for n in (1, 2, 3)), summary="triple")
    if "[pause]" in text:  # one subtask asks, the other's answers cannot be used
        return plan_answer(("ask", [], ["create_file"]), ("muddle", [], ["create_file"]))
    if "[coplan]" in text:  # a plan the person changes before it runs
        return plan_answer(("gather", [], []), ("write", ["gather"], []), summary="two steps")
    if "[browse]" in text:
        hints = ["browser_open", "browser_fill", "browser_click"]
        return plan_answer(("browse", [], hints), summary="browse plan")
    for marker in ("report", "lookup", "later", "resume", "mail"):
        if f"[{marker}]" in text:
            return plan_answer((marker, [], ["read_csv", "create_file"]), summary=f"{marker} plan")
    return plan_answer(("other", [], []))


def _calls(prompt: str) -> int:
    return len(re.findall(r"<<<DATA output \d+>>>", prompt))


def _text(request: dict) -> str:
    """The step's prompt (beside the page's screenshot, for a model that reads images)."""
    content = request["messages"][1]["content"]
    if isinstance(content, str):
        return content
    return next(part["text"] for part in content if part["type"] == "text")


_BROWSING = [
    ("browser_open", {}),
    ("browser_fill", {"values": {"Username": USERNAME, "Password": ""}}),
    ("browser_click", {"role": "button", "name": "Sign in"}),
]


def step_script(request: dict) -> dict:  # noqa: PLR0911, PLR0912 - one answer per test and step
    """The executor, per test (by subtask name)."""
    prompt = _text(request)
    subtask = re.search(r"Your subtask: (\S+) —", prompt).group(1)
    calls = _calls(prompt)
    if subtask == "browse" and calls < len(_BROWSING):
        tool, arguments = _BROWSING[calls]
        if tool == "browser_open":  # the site's address is in the objective
            arguments = {
                "url": re.search(r"(http://127\.0\.0\.1:\d+)/", prompt).group(1) + "/login"
            }
        return {"action": "use_tools", "tool_calls": [{"tool": tool, "arguments": arguments}]}
    if subtask == "report" and calls == 0:
        return {
            "action": "use_tools",
            "tool_calls": [{"tool": "read_csv", "arguments": {"path": "sales.csv"}}],
        }
    if subtask == "report" and calls == 1:
        content = f"# Sales\n\nnorth: 17, south: 5\n\n{HOSTILE}\n"
        return {
            "action": "use_tools",
            "tool_calls": [
                {"tool": "create_file", "arguments": {"path": "summary.md", "content": content}}
            ],
        }
    if subtask == "report":
        return {
            "action": "finish",
            "result": f"Totals written to summary.md. {HOSTILE}",
            "result_files": ["summary.md"],
        }
    if subtask == "lookup" and "use the second sheet" not in prompt:
        return {
            "action": "stuck",
            "stuck_reason": "The workbook has two sheets and I cannot tell which one.",
        }
    if subtask == "muddle":  # once the test has seen the other's card: no arguments, twice
        if not MUDDLE.is_set():
            return Later(0.2, step_script)
        return {"action": "use_tools", "tool_calls": [{"tool": "create_file"}]}
    if subtask == "ask" and calls == 0:
        arguments = {"path": "ask.md", "content": "# Asked\n"}
        return {
            "action": "use_tools",
            "tool_calls": [{"tool": "create_file", "arguments": arguments}],
        }
    if subtask.startswith("triple") and calls == 0:
        same = {"path": "notes.md", "content": "# Notes\n"}
        return {"action": "use_tools", "tool_calls": [{"tool": "create_file", "arguments": same}]}
    if subtask == "mail" and calls == 0:
        email = {"to": ["boss@example.com"], "subject": "Weekly note", "body": "All is well."}
        return {"action": "use_tools", "tool_calls": [{"tool": "send_email", "arguments": email}]}
    if subtask == "write" and "[coplan]" in prompt:  # promises a report, writes it when sent back
        if "The reviewer sent this subtask back" not in prompt:
            return {"action": "finish", "result": "The report is in report.md.",
                    "result_files": ["report.md"]}  # fmt: skip
        if calls == 0:
            arguments = {"path": "report.md", "content": "# Three cities\n\nTotal: 1,079,692\n"}
            return {
                "action": "use_tools",
                "tool_calls": [{"tool": "create_file", "arguments": arguments}],
            }
        return {"action": "finish", "result": "The report is in report.md.",
                "result_files": ["report.md"]}  # fmt: skip
    if subtask == "resume" and calls < 3:
        name = f"part{calls + 1}.md"
        return {
            "action": "use_tools",
            "tool_calls": [
                {"tool": "create_file", "arguments": {"path": name, "content": f"# {name}\n"}}
            ],
        }
    return {"action": "finish", "result": f"{subtask} finished."}


ANSWER = "North sold 17 and south 5, 22 in all; the totals per region are in summary.md."


def review_script(request: dict) -> dict:
    if "[report]" in _objective(request):  # the answer to the objective, from the evidence
        return {"verdict": "approve", "summary": ANSWER}
    return {"verdict": "approve", "summary": f"All good. {HOSTILE}"}


@pytest.fixture(scope="module")
def llm():
    server = ScriptedLLM().start()
    server.always("PlanDraft", plan_script)
    server.always("StepDecision", step_script)
    server.always("ReviewDecision", review_script)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mail():
    with MailServer(username="alice", password="mail-pass-7") as server:
        yield server


@pytest.fixture(scope="module")
def site():
    with Site() as running:
        yield running


@pytest.fixture(scope="module")
def platforms():
    with Platforms() as running:
        yield running


@pytest.fixture(scope="module")
def up(llm, mail, site, platforms, tmp_path_factory, nats_url, redis_url):
    """``troika up`` on free ports; yields the web app's address (behind a proxy the tests can
    cut), the gateway's, the data folder and the proxy."""
    data = tmp_path_factory.mktemp("up")
    web_port, gateway_port = free_port(), free_port()
    # The browsers reach the web app through it, from an address of their own (as people do).
    proxy = CuttableProxy(web_port, source=BROWSER_ADDRESS).start()
    prefix = "web" + secrets.token_hex(4)
    env = {
        **os.environ,
        **llm_env(llm),
        "TROIKA_DATA_DIR": str(data),
        "TROIKA_GATEWAY_PORT": str(gateway_port),
        "TROIKA_WEB_PORT": str(web_port),
        "TROIKA_WEB_PUBLIC_URL": proxy.url,
        "TROIKA_NATS_URL": nats_url,
        "TROIKA_REDIS_URL": redis_url,
        "TROIKA_REDIS_PREFIX": f"{prefix}:",
        "TROIKA_BUS_PREFIX": prefix,
        # every person of these tests signs up and in from the one browser address
        "TROIKA_LOGIN_ATTEMPTS_PER_ADDRESS": "500",
        "TROIKA_PASSWORD_TIME_COST": "1",
        "TROIKA_PASSWORD_MEMORY_KIB": "8192",
        "TROIKA_LOG_FORMAT": "json",
        "TROIKA_OUTBOUND_ALLOW_HOSTS": json.dumps(
            [f"127.0.0.1:{mail.port}", f"127.0.0.1:{site.port}"]
        ),
        "TROIKA_READY_TIMEOUT_S": str(scaled(180)),  # its own wait, as on a quiet machine
        # The social platforms' APIs, and X's sign-in with the test server's OAuth client
        "TROIKA_TWITTER_API_URL": platforms.base("x"),
        "TROIKA_TWITTER_AUTHORIZE_URL": f"{platforms.base('x')}/i/oauth2/authorize",
        "TROIKA_TWITTER_TOKEN_URL": f"{platforms.base('x')}/2/oauth2/token",
        "TROIKA_TWITTER_CLIENT_ID": platforms.oauth_client_id,
        "TROIKA_TWITTER_CLIENT_SECRET": platforms.oauth_client_secret,
        "TROIKA_INSTAGRAM_API_URL": platforms.base("instagram"),
        "TROIKA_FACEBOOK_API_URL": platforms.base("facebook"),
        "TROIKA_LINKEDIN_API_URL": platforms.base("linkedin"),
    }
    log = (data / "up.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "troika", "up"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    web, api = proxy.url, f"http://127.0.0.1:{gateway_port}"
    deadline = time.monotonic() + scaled(240)
    while True:
        try:
            if (
                httpx.get(f"{web}/ping").status_code == 200
                and httpx.get(f"{api}/ready").status_code == 200
            ):
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("troika up did not start:\n" + (data / "up.log").read_text()[-5000:])
        time.sleep(0.5)
    yield {"web": web, "api": api, "data": data, "proxy": proxy}
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(scaled(30))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    log.close()
    proxy.stop()


_CSP_REPORTER = """document.addEventListener('securitypolicyviolation', (e) =>
  console.error(`csp-violation ${e.effectiveDirective} ${e.blockedURI}`));"""


async def csp_violations(page) -> list[str]:
    """What the page's content security policy blocks from now on (filled as it happens)."""
    seen: list[str] = []
    await page.add_init_script(_CSP_REPORTER)
    page.on(
        "console",
        lambda message: seen.append(message.text) if "csp-violation" in message.text else None,
    )
    return seen


async def sign_up(page, web: str, name: str) -> None:
    """Creates an account through the sign-up page and lands on the dashboard."""
    await page.goto(f"{web}/signup")
    await page.fill("#email", f"{name}@example.com")
    await page.fill("#username", name)
    await page.fill("#password", PASSWORD)
    await page.fill("#confirm", PASSWORD)
    await page.click("#submit")
    await page.wait_for_url(f"{web}/")
    await page.wait_for_selector(f"#signed-in-as:has-text('{name}')")


async def create_task(page) -> str:
    """Sends the composer's task and lands on its page; the task's id."""
    await page.click("#create-task")
    await page.wait_for_url(re.compile(r".*/tasks/[0-9a-f]+$"))
    return task_id_of(page)


async def api_token(api: str, name: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=api) as http:
        tokens = (await http.post("/auth/login", json={"login": name, "password": PASSWORD})).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def task_id_of(page) -> str:
    return page.url.rstrip("/").rsplit("/", 1)[-1]


@pytest.mark.parametrize("browser_name", BROWSERS)
async def test_a_task_with_an_uploaded_file_is_approved_and_completes_live(  # noqa: PLR0915
    up, llm, browser_name, page, screenshots, tmp_path
) -> None:
    web = up["web"]
    name = f"ada-{browser_name}"
    # troika up told the person where to open it: the public address, here the proxy's
    assert f"Open {web} in your browser." in (up["data"] / "up.log").read_text()
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    blocked = await csp_violations(page)  # the app's own scripts all run under its policy
    await page.goto(f"{web}/signin")
    await page.fill("#login", "nobody")
    await page.fill("#password", "wrong password!")
    await page.click("#submit")
    await page.wait_for_selector("#form-error:has-text('Wrong username or password.')")
    await screenshots.shot(page, "sign-in-refused")

    await sign_up(page, web, name)
    # The gateway saw the person's address, not the web app's: the sign-in limits count people.
    with sqlite3.connect(up["data"] / "troika.db") as db:
        addresses = db.execute(
            "SELECT s.client_address FROM sessions s JOIN users u ON u.id = s.user_id"
            " WHERE u.username = ?",
            (name,),
        ).fetchall()
    assert addresses == [(BROWSER_ADDRESS,)]
    await page.reload()  # the session survives a reload
    await page.wait_for_selector(f"#signed-in-as:has-text('{name}')")
    await screenshots.shot(page, "dashboard")

    sales = tmp_path / "sales.csv"
    sales.write_text(CSV)
    # typed key by key: Firefox's WebDriver BiDi fills a field without the input events React
    # listens for, where a person's typing or pasting sends them
    await page.locator("#objective").press_sequentially(
        "Total the sales per region in the file I uploaded [report]"
    )
    await page.set_input_files("#new-files input[type=file]", str(sales))
    await page.wait_for_selector(".staged-file:has-text('sales.csv')")
    await screenshots.shot(page, "objective-and-file")
    task_id = await create_task(page)

    # The first action waits: the approvals panel shows it in full, and the badge counts it.
    card = page.locator(".approval-card").first
    await card.wait_for(timeout=scaled(60_000))
    assert await card.locator(".tool").inner_text() == "read_csv"
    assert "sales.csv" in await card.locator(".argument-value").first.inner_text()
    await page.wait_for_selector("#pending-badge:has-text('1')")
    await screenshots.shot(page, "first-approval")
    await card.locator(".approve").click()

    # The second: create_file, approved with "don't ask again for this task".
    await page.locator(".approval-card .tool:has-text('create_file')").wait_for(
        timeout=scaled(60_000)
    )
    card = page.locator(".approval-card").first
    await screenshots.shot(page, "second-approval")
    await card.locator(".remember").check()
    await card.locator(".approve").click()

    # It completes live, with no reload: status, review verdict, result, files.
    await page.wait_for_selector("#task-status:has-text('completed')", timeout=scaled(90_000))
    await page.wait_for_selector("#review:has-text('approved')")
    await screenshots.shot(page, "completed")
    assert await page.locator(".approval-card").count() == 0
    assert await page.locator("#pending-badge").count() == 0
    names = await page.locator(".file-name").all_inner_texts()
    assert sorted(names) == ["sales.csv", "summary.md"]
    assert int((await page.locator("#tokens").inner_text()).replace(",", "")) > 0

    # The planner knew the file from the start: it came with the task.
    plans = [json.dumps(r["messages"]) for r in llm.asked_for("PlanDraft")]
    plans = [text for text in plans if "[report]" in text]
    assert plans
    assert all("sales.csv" in text for text in plans)

    # Agent text is shown as text: the markup is visible, nothing of it ran.
    await expect(page.locator("#result")).to_have_text(f"Result{ANSWER}")
    assert HOSTILE in await page.locator("#plan").inner_text()  # the executor's own result
    # The result is on top, the reviewer's verdict with it, and it is said once.
    await expect(page.locator("#review")).to_have_text(
        "Review: approved each subtask was checked against its acceptance criteria."
    )
    top = {
        where: (await page.locator(where).bounding_box())["y"]
        for where in ("#result", "#review", "#plan", "#timeline")
    }
    assert top["#result"] < top["#review"] < top["#plan"] < top["#timeline"], top
    assert (
        await page.locator("#plan script, #plan img, #timeline script, #timeline img").count() == 0
    )
    assert await page.evaluate("window.__pwned === undefined")
    assert alerts == []

    # The timeline shows the subtask's events together, routine ones folded; asked for every
    # event, it is the task's whole event log, once each, in order.
    headers = await api_token(up["api"], name)
    async with httpx.AsyncClient(base_url=up["api"], headers=headers) as http:
        log = (await http.get(f"/tasks/{task_id}/events", params={"limit": 500})).json()
    group = page.locator(".timeline-group[data-subtask='report']")
    await expect(group.locator(".event[data-kind='subtask.done']")).to_have_count(1)
    assert await group.locator(".event[data-kind='step.requested']").count() == 0
    await page.click("#timeline-every")
    await expect(group.locator(".event[data-kind='step.requested']")).not_to_have_count(0)
    shown = [
        int(s)
        for s in await page.locator(".event").evaluate_all(
            "(nodes) => nodes.map((n) => n.dataset.seq)"
        )
    ]
    assert sorted(shown) == [e["seq"] for e in log["events"]]
    # Each subtask says how long it took; one agent's events can be read alone.
    await expect(group.locator("summary")).to_have_text(
        re.compile(r"Subtask report · \d+ events · \d+ (s|min)")
    )
    await page.click("#timeline-agent")
    await page.get_by_role("option", name="reviewer").click()
    await expect(page.locator(".event[data-kind='review.verdict']")).to_have_count(1)
    await expect(page.locator(".event:not([data-who='reviewer'])")).to_have_count(0)
    whos = await page.locator(".event").evaluate_all("(nodes) => nodes.map((n) => n.dataset.who)")
    assert set(whos) == {"reviewer"}
    await page.click("#timeline-agent")
    await page.get_by_role("option", name="everyone").click()
    await page.click("#timeline-every")  # routine events folded again
    await expect(group.locator(".event[data-kind='step.requested']")).to_have_count(0)

    # The result downloads with the bytes the agent wrote.
    row = page.locator(".file", has_text="summary.md")
    async with page.expect_download() as info:
        await row.locator(".download").click()
    download = await info.value
    saved = tmp_path / "downloaded.md"
    await download.save_as(saved)
    assert download.suggested_filename == "summary.md"
    assert saved.read_text() == f"# Sales\n\nnorth: 17, south: 5\n\n{HOSTILE}\n"

    # Files are looked at in place: the report rendered (its markup as text), the CSV a table.
    await row.locator(".preview").click()
    preview = page.locator("#preview")
    await expect(preview.locator("#preview-name")).to_have_text("summary.md")
    await expect(preview.locator(".preview-md h1")).to_have_text("Sales")
    assert HOSTILE in await preview.inner_text()
    assert await preview.locator("script, img").count() == 0
    await page.locator(".file", has_text="sales.csv").locator(".preview").click()
    await expect(preview.locator("#preview-name")).to_have_text("sales.csv")
    cells = preview.locator(".preview-table tbody tr")
    await expect(cells).to_have_count(3)
    assert await cells.first.locator("td").all_inner_texts() == ["north", "10"]
    assert await preview.locator(".preview-table th").all_inner_texts() == ["region", "amount"]
    await screenshots.shot(page, "preview")
    assert await page.evaluate("window.__pwned === undefined")
    assert blocked == []


PHONE = {"width": 390, "height": 844}
TABLET = {"width": 768, "height": 1024}


async def _fits(page, what: str) -> None:
    """Nothing on the page reaches past the screen (no sideways scrolling), and it says
    nothing a person should not read."""
    screen = page.viewport_size["width"]
    width = await page.evaluate("document.documentElement.scrollWidth")
    wide = await page.evaluate(
        """(limit) => [...document.querySelectorAll('body *')]
            .filter((e) => e.getBoundingClientRect().right > limit + 1)
            .slice(0, 8)
            .map((e) => `${e.tagName.toLowerCase()}.${e.className}#${e.id}`
                        + ` ${Math.round(e.getBoundingClientRect().right)}`)""",
        screen,
    )
    assert width <= screen, f"{what} is {width} px wide on a {screen} px screen: {wide}"
    await readable(page, what)


async def test_every_page_fits_a_phone_and_the_menu_opens_from_a_button(  # noqa: PLR0915
    up, chromium, screenshots
) -> None:
    web = up["web"]
    context = await new_context(chromium, viewport=PHONE, has_touch=True)
    try:
        page = await context.new_page()
        await page.goto(f"{web}/signin")
        await page.wait_for_selector("#login")
        await _fits(page, "sign-in")
        await page.goto(f"{web}/signup")
        await page.wait_for_selector("#confirm")
        await _fits(page, "sign-up")
        await page.click("#submit")  # sent empty: each field says what it needs, in words
        await expect(page.locator(".field-error")).to_have_text(
            ["Enter your e-mail address.", "Choose a username.", "Choose a password."]
        )
        await page.fill("#email", "fay@example.com")
        await page.fill("#username", "f")
        await page.fill("#password", PASSWORD)
        await page.fill("#confirm", PASSWORD)
        await page.click("#submit")
        await expect(page.locator(".field-error")).to_have_text(
            ["Must be at least 3 characters long."]
        )
        await screenshots.shot(page, "phone-sign-up-refused")
        await _fits(page, "sign-up with its errors")
        await page.fill("#username", "fay")
        await page.fill("#password", PASSWORD)
        await page.fill("#confirm", PASSWORD)
        await page.click("#submit")
        await page.wait_for_url(f"{web}/")
        await page.wait_for_selector("#objective")
        await _fits(page, "the dashboard")
        await screenshots.shot(page, "phone-dashboard")
        # The navigation is one button away, and closes again on the next page.
        assert not await page.locator("#signed-in-as").is_visible()
        await page.click("#nav-toggle")
        await page.wait_for_selector("#signed-in-as:has-text('fay')")
        await screenshots.shot(page, "phone-menu")
        await page.get_by_role("link", name="Approvals").click()
        await page.wait_for_url(f"{web}/approvals")
        await expect(page.locator("#signed-in-as")).to_be_hidden()

        task = await _three_asks(page, web, "Write the notes three ways on a phone [triple]")
        await _fits(page, "a task with three approval cards")
        await screenshots.shot(page, "phone-task")
        # A repeating schedule, so that the schedules page and the dashboard show their cards.
        headers = await api_token(up["api"], "fay")
        async with httpx.AsyncClient(base_url=up["api"], headers=headers) as http:
            made = await http.post(
                "/tasks",
                json={"objective": "Water the plants every weekday [later]",
                      "cron": "0 8 * * 1-5", "timezone": "Europe/Paris"},
            )  # fmt: skip
            assert made.status_code == 201, made.text
        pages = (
            (f"/tasks/{task}", ".approval-card"),
            ("/", "#scheduled .task-row"),
            ("/approvals", ".approval-card"),
            ("/history", ".history-row"),
            ("/schedules", ".schedule"),
            ("/profile", "#signed-in-as:has-text('fay')"),
            ("/how-it-works", ".guide-step"),
        )
        for size in (PHONE, TABLET):  # on a phone, then on a tablet held upright
            await page.set_viewport_size(size)
            for path, ready in pages:
                await page.goto(f"{web}{path}")
                await page.wait_for_selector(ready, state="attached")
                await page.wait_for_timeout(300)  # the page's lists fill in after its frame
                await _fits(page, f"{path} at {size['width']} px")
        await page.set_viewport_size(PHONE)
        await page.goto(f"{web}/tasks/{task}")
        await page.click("#cancel-task")
        await expect(page.locator("#task-status")).to_have_text("cancelled")
    finally:
        await context.close()


async def _signs_in_and_returns(page, web: str, path: str) -> None:
    """Opens ``path`` signed out, is sent to sign in, signs in as dora and lands on it."""
    await page.goto(f"{web}{path}")
    await page.wait_for_url(re.compile(rf".*/signin/?\?next={re.escape(path)}/?$"))
    await page.fill("#login", "dora")
    await page.fill("#password", PASSWORD)
    await page.click("#submit")
    await page.wait_for_url(re.compile(rf".*{re.escape(path)}/?$"))


async def test_signing_in_returns_to_the_page_that_asked_for_it(up, page) -> None:
    async with httpx.AsyncClient(base_url=up["api"]) as http:
        account = {"email": "dora@example.com", "username": "dora", "password": PASSWORD}
        assert (await http.post("/auth/register", json=account)).status_code == 201
    web = up["web"]
    await _signs_in_and_returns(page, web, "/history")
    await page.wait_for_selector("#signed-in-as:has-text('dora')")
    await expect(page.locator("#nav-toggle")).to_be_hidden()  # a wide screen needs no menu
    # No task yet: the dashboard offers examples, and one fills the composer.
    await page.goto(f"{web}/")
    examples = page.locator("#examples .example")
    await expect(examples).to_have_count(4)
    await examples.first.click()
    await expect(page.locator("#objective")).to_have_value(
        "Write a haiku about message queues and save it to haiku.txt"
    )
    # A link to a task, opened after signing out, leads to that task once signed in again.
    headers = await api_token(up["api"], "dora")
    async with httpx.AsyncClient(base_url=up["api"], headers=headers) as http:
        later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        made = await http.post("/tasks", json={"objective": "Tidy the notes", "run_at": later})
        assert made.status_code == 201, made.text
    task = made.json()["id"]
    await page.click("#sign-out")
    await page.wait_for_url(re.compile(r".*/signin"))
    await _signs_in_and_returns(page, web, f"/tasks/{task}")
    await expect(page.locator("#objective-text")).to_have_text("Tidy the notes")


async def test_while_the_scripts_load_the_page_shows_its_shape_not_a_blank(
    up, page, screenshots
) -> None:
    web = up["web"]
    await sign_up(page, web, "lena")
    scripts_may_load = asyncio.Event()

    async def hold(route) -> None:
        await scripts_may_load.wait()
        await route.continue_()

    await page.route(re.compile(r".*\.m?js(\?.*)?$"), hold)
    await page.goto(f"{web}/history", wait_until="commit")
    skeleton = page.locator("#loading-skeleton")
    await expect(skeleton).to_be_visible(timeout=scaled(30_000))
    await expect(skeleton.get_by_role("status")).to_have_text("Loading…")
    assert await page.get_by_text("No task matches.").count() == 0  # no empty state that lies
    await screenshots.shot(page, "loading")
    scripts_may_load.set()
    await page.wait_for_selector("#signed-in-as:has-text('lena')", timeout=scaled(60_000))
    await expect(skeleton).to_have_count(0)
    await expect(page.get_by_text("No task matches.")).to_be_visible()
    await page.unroute_all()


async def test_markup_slipped_into_a_page_does_not_run_and_no_site_can_frame_it(
    up, page, screenshots
) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{up['web']}/signin/")
    policy = answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"

    blocked = await csp_violations(page)
    await page.goto(f"{up['web']}/signin")
    await page.wait_for_selector("#login")
    await page.click("#how-it-works-link")  # open to everyone, before any account
    await expect(page.locator(".guide-step")).to_have_count(6)
    await screenshots.shot(page, "how-it-works")
    await page.go_back()
    await page.wait_for_selector("#login")
    # As a flaw that let text through as markup would: a script and an event handler.
    await page.evaluate(
        """() => {
          const script = document.createElement('script');
          script.textContent = 'window.__pwned = 1';
          document.body.append(script);
          const holder = document.createElement('div');
          holder.innerHTML = '<img src="data:," onerror="window.__pwned = 2">';
          document.body.append(holder);
        }"""
    )

    async def both_refused() -> bool:
        return len(blocked) >= 2

    await wait_for(both_refused, what="the browser to refuse both")
    assert await page.evaluate("window.__pwned === undefined")
    assert all("script-src" in line for line in blocked), blocked
    # The page still works: its own scripts were allowed.
    await page.fill("#login", "nobody")
    await page.fill("#password", "wrong password!")
    await page.click("#submit")
    await page.wait_for_selector("#form-error:has-text('Wrong username or password.')")


async def _three_asks(page, web: str, objective: str) -> str:
    """Starts a task whose three parallel subtasks ask for the same call; its id."""
    await page.goto(f"{web}/")
    await page.locator("#objective").press_sequentially(objective)
    task = await create_task(page)
    await expect(page.locator(".approval-card")).to_have_count(3, timeout=scaled(60_000))
    return task


def _seconds(took: str) -> int:
    """ "3 min 5 s" as 185."""
    units = {"s": 1, "min": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+) (s|min|h)\b", took))


async def test_the_same_call_from_parallel_subtasks_is_no_stall_approve_all_and_cancel(  # noqa: PLR0915
    up, page, screenshots
) -> None:
    web = up["web"]
    await sign_up(page, web, "cleo")
    first = await _three_asks(page, web, "Write the notes three ways [triple]")
    second = await _three_asks(page, web, "Write the notes three ways again [triple]")
    # The approvals page groups the cards under their tasks, each card naming its task with
    # a link that works; "approve all" lists a task's calls first.
    await page.goto(f"{web}/approvals")
    await expect(page.locator(".approval-group")).to_have_count(2)
    for task, title in (
        (first, "Write the notes three ways [triple]"),
        (second, "Write the notes three ways again [triple]"),
    ):
        group = page.locator(".approval-group", has=page.locator(f"a[href='/tasks/{task}']"))
        await expect(group.locator(".task-link")).to_have_text(title)
        await expect(group.locator(".approval-card")).to_have_count(3)
        await expect(group.locator(".card-task")).to_have_text([title] * 3)
    await page.locator(f".card-task[href='/tasks/{second}']").first.click()
    await page.wait_for_url(f"{web}/tasks/{second}")
    await expect(page.locator("#objective-text")).to_have_text(
        "Write the notes three ways again [triple]"
    )
    await page.goto(f"{web}/approvals")
    group = page.locator(".approval-group", has=page.locator(f"a[href='/tasks/{first}']"))
    await group.locator(".approve-all").click()
    items = page.locator(".approve-all-list li")
    await expect(items).to_have_count(3)
    assert all(t.startswith("create_file — path: notes.md") for t in await items.all_inner_texts())
    await screenshots.shot(page, "approve-all")
    await page.click(".approve-all-confirm")
    await expect(page.locator(".approval-group")).to_have_count(1)  # the other task's wait
    await expect(page.locator(".approval-card")).to_have_count(3)
    await page.goto(f"{web}/tasks/{first}")
    await expect(page.locator("#task-status")).to_have_text("completed", timeout=scaled(60_000))

    await page.goto(f"{web}/tasks/{second}")
    cards = page.locator(".approval-card")
    await expect(cards).to_have_count(3)
    await page.wait_for_selector("#pending-badge:has-text('3')")
    # Three subtasks asking for the same file is three questions, not a loop: the task waits,
    # and each card says which other subtasks wait for the same call.
    await expect(page.locator("#task-status")).to_have_text("awaiting approval")
    flags = await page.locator(".duplicate-flag").all_inner_texts()
    assert sorted(flags) == [
        f"The same call waits for subtask {others} too."
        for others in ("triple1, triple2", "triple1, triple3", "triple2, triple3")
    ]
    await screenshots.shot(page, "three-asks")

    # Cancelling clears the cards and the badge at once everywhere: here, and on the
    # approvals page open in another tab, which is not reloaded.
    elsewhere = await page.context.new_page()
    await elsewhere.goto(f"{web}/approvals")
    await expect(elsewhere.locator(".approval-card")).to_have_count(3)
    await elsewhere.wait_for_selector("#pending-badge:has-text('3')")
    await page.click("#cancel-task")
    await expect(page.locator("#task-status")).to_have_text("cancelled")
    await expect(cards).to_have_count(0)
    await expect(page.locator("#pending-badge")).to_have_count(0)
    assert await page.locator(".step-status").all_inner_texts() == ["cancelled"] * 3
    await screenshots.shot(page, "cancelled")
    await expect(elsewhere.locator(".approval-card")).to_have_count(0)
    await expect(elsewhere.locator("#pending-badge")).to_have_count(0)
    await expect(elsewhere.locator("#no-approvals")).to_be_visible()
    await elsewhere.close()
    await page.goto(f"{web}/approvals")
    await page.wait_for_selector("#signed-in-as")
    await expect(page.locator(".approval-card")).to_have_count(0)
    await expect(page.locator("#pending-badge")).to_have_count(0)
    # History: the figures of both runs, and the first one first when asked for the oldest.
    await page.goto(f"{web}/history")
    for figure, count in (("total", 2), ("completed", 1), ("cancelled", 1), ("running", 0)):
        await expect(page.locator(f"#stat-{figure}")).to_have_text(str(count))
    await page.click("#sort")
    await page.get_by_role("option", name="oldest first").click()
    rows = page.locator(".history-row a.task-row")
    await expect(rows.first).to_have_attribute("href", f"/tasks/{first}")
    await expect(rows).to_have_count(2)
    # Each row says what it cost and how long it ran, and sorts by either: the first run
    # made twice the model calls of the cancelled one, which is the newest.
    await page.click("#sort")
    await page.get_by_role("option", name="newest first").click()
    await expect(rows.first).to_have_attribute("href", f"/tasks/{second}")
    await page.click("#sort")
    await page.get_by_role("option", name="most expensive first").click()
    await expect(rows.first).to_have_attribute("href", f"/tasks/{first}")
    costs = [float(c.lstrip("$")) for c in await page.locator(".row-cost").all_inner_texts()]
    assert costs[0] > costs[1] > 0, costs
    await page.click("#sort")
    await page.get_by_role("option", name="longest first").click()

    async def longest_first() -> bool:  # once the list is read again in the new order
        took = [_seconds(t) for t in await page.locator(".row-took").all_inner_texts()]
        return len(took) == 2 and took == sorted(took, reverse=True)

    await wait_for(longest_first, what="the history sorted by how long each task ran")
    await screenshots.shot(page, "history-by-duration")


async def test_a_pause_withdraws_the_tasks_questions_and_says_why_in_words(
    up, page, screenshots
) -> None:
    web = up["web"]
    await sign_up(page, web, "mia")
    await page.locator("#objective").press_sequentially("Write the notes, muddled [pause]")
    await create_task(page)
    await expect(page.locator(".approval-card")).to_have_count(1, timeout=scaled(60_000))
    await page.wait_for_selector("#pending-badge:has-text('1')")
    MUDDLE.set()  # now the other subtask's answers cannot be used, twice: the task pauses
    await expect(page.locator("#task-status")).to_have_text(
        "needs guidance", timeout=scaled(60_000)
    )
    await expect(page.locator("#stuck-reason")).to_have_text(
        "the executor's answer could not be used 2 times in a row: it proposed a create_file "
        "call without its path and content"
    )
    # Nothing runs while the task is paused, so nothing waits for an answer: no card, no badge,
    # here or on the approvals page.
    await expect(page.locator(".approval-card")).to_have_count(0)
    await expect(page.locator("#pending-badge")).to_have_count(0)
    assert "paused" in await page.locator(".step-status").all_inner_texts()
    # What the agents saw is there for the curious, named in words, never as a Python value
    # (a value that is not text is JSON: test_views' evidence test).
    evidence = page.locator("#evidence")
    await evidence.locator("summary").click()
    await expect(evidence.locator(".evidence-name")).to_have_text(["Agent", "The last error"])
    values = await evidence.locator(".evidence-value").all_inner_texts()
    assert values[0] == "executor"
    assert "invalid arguments for create_file" in values[1]
    for value in values:
        assert not re.search(r"\{'|\['|\bNone\b|\bTrue\b|\bFalse\b", value), value
    await evidence.locator("summary").click()
    # The timeline says it plainly, once with how many times; the exact words are folded away.
    unusable = page.locator(".event[data-kind='agent.unusable_answer']")
    await expect(unusable).to_have_count(1)
    await expect(unusable.locator(".times")).to_have_text("\u00d72")
    await expect(unusable).to_contain_text(
        "It proposed a create_file call without its path and content."
    )
    detail = unusable.locator(".event-detail")
    await expect(detail.locator("pre, code").first).to_be_hidden()
    await detail.locator("summary").click()
    await expect(detail).to_contain_text("invalid arguments for create_file")
    await detail.locator("summary").click()
    await screenshots.shot(page, "paused")
    await page.goto(f"{web}/approvals")
    await page.wait_for_selector("#signed-in-as")
    await expect(page.locator(".approval-card")).to_have_count(0)
    MUDDLE.clear()


async def test_the_plan_is_reviewed_changed_and_the_changes_reach_the_executor(  # noqa: PLR0915
    up, llm, page, screenshots
) -> None:
    web = up["web"]
    await sign_up(page, web, "petra")
    # The profile's default: every new task waits for its plan to be reviewed; the composer
    # starts from it (and can say otherwise for one task).
    await page.goto(f"{web}/profile")
    await page.click("#review-plans")
    await expect(page.locator("#review-plans")).to_have_attribute("data-state", "checked")
    await page.goto(f"{web}/")
    review = page.locator("#review-plan")
    await expect(review).to_have_attribute("data-state", "checked")
    await review.click()
    await expect(review).to_have_attribute("data-state", "unchecked")
    await review.click()
    await page.locator("#objective").press_sequentially("Report on three cities [coplan]")
    await create_task(page)
    await expect(page.locator("#task-status")).to_have_text(
        "awaiting plan review", timeout=scaled(60_000)
    )
    nodes = page.locator("#plan-graph .plan-node")
    await expect(nodes).to_have_count(2)
    assert [await n.get_attribute("data-status") for n in await nodes.all()] == ["pending"] * 2
    await screenshots.shot(page, "plan-to-review")

    await page.click("#plan-edit")
    steps = page.locator(".draft-step")
    await expect(steps).to_have_count(2)
    await steps.nth(0).locator(".draft-title input").fill("Gather the census figures")
    await steps.nth(0).locator(".draft-description textarea").fill("Use only the 2025 census.")
    # a new step goes last and waits for the one before it; moved up, it waits for "gather"
    await page.click("#draft-add")
    await page.click("#draft-add")
    await expect(steps).to_have_count(4)
    await steps.nth(3).locator(".draft-remove").click()
    await expect(steps).to_have_count(3)
    await steps.nth(2).locator(".draft-title input").fill("Check the sums")
    await steps.nth(2).locator(".draft-up").click()
    check, write = steps.nth(1), steps.nth(2)
    await expect(check.locator(".draft-title input")).to_have_value("Check the sums")
    await check.locator(".draft-after[data-after='write']").click()
    await check.locator(".draft-after[data-after='gather']").click()
    await write.locator(".draft-after[data-after='step-3']").click()
    await write.locator(".draft-after[data-after='gather']").click()
    await write.locator(".draft-title input").fill("")
    await page.click("#draft-start")
    await expect(page.locator("#draft-problem")).to_have_text("Give subtask 3 a name.")
    await write.locator(".draft-title input").fill("Write the report")
    await screenshots.shot(page, "plan-changed")
    await page.set_viewport_size(PHONE)  # the editor and the graph fit a phone too
    await _fits(page, "the plan editor")
    await page.set_viewport_size(VIEWPORT)
    await page.click("#draft-start")
    # The report was promised but never written: the reviewer sends the subtask back without
    # asking its model, and says why in words; written on the second try, the work passes.
    card = page.locator(".approval-card")
    await expect(card.locator(".tool")).to_have_text("create_file", timeout=scaled(90_000))
    await expect(page.locator("#review")).to_have_text(
        "Review: sent back Checked without the model: subtask write — it promised files it did"
        " not deliver: report.md does not exist."
    )
    await screenshots.shot(page, "promised-file-missing")
    await card.locator(".approve").click()
    await expect(page.locator("#task-status")).to_have_text("completed", timeout=scaled(90_000))
    await expect(page.locator("#review")).to_contain_text("approved")
    await expect(page.locator(".file-name")).to_have_text(["report.md"])
    # the reviewer's text is text: its markup shown, none of it run
    assert HOSTILE in await page.locator("#result").inner_text()
    assert await page.locator("#result script, #result img").count() == 0
    assert await page.evaluate("window.__pwned === undefined")
    await expect(page.locator("#plan-review")).to_have_count(0)
    await expect(nodes).to_have_count(3)
    assert [await n.get_attribute("data-status") for n in await nodes.all()] == ["done"] * 3
    await screenshots.shot(page, "plan-done")

    prompts = [_text(r) for r in llm.asked_for("StepDecision") if "[coplan]" in _objective(r)]
    started = [re.search(r"Your subtask: (\S+) —", p).group(1) for p in prompts]
    assert started[:3] == ["gather", "step-3", "write"], "the edited order and dependencies hold"
    assert "report.md does not exist" in prompts[3]  # the revision went back to the executor
    assert "Gather the census figures\nUse only the 2025 census." in prompts[0]
    assert "Your subtask: step-3 — Check the sums" in prompts[1]
    assert "Result of subtask gather" in prompts[1]
    assert "Result of subtask step-3" in prompts[2]
    headers = await api_token(up["api"], "petra")
    async with httpx.AsyncClient(base_url=up["api"], headers=headers) as http:
        task = (await http.get(f"/tasks/{task_id_of(page)}")).json()
    assert {s["key"]: s["depends_on"] for s in task["subtasks"]} == {
        "gather": [],
        "step-3": ["gather"],
        "write": ["step-3"],
    }


async def test_a_task_paused_by_its_budget_goes_on_when_it_is_raised_and_limits_are_kept(
    up, page, screenshots
) -> None:
    web = up["web"]
    await sign_up(page, web, "bruno")
    await page.locator("#objective").press_sequentially("Write a short note")
    await page.click("text=Budget (optional)")
    await page.locator("#max-tokens").press_sequentially("100")
    await create_task(page)
    await expect(page.locator("#stuck-reason")).to_have_text(
        "the token budget of 100 tokens is used up", timeout=scaled(60_000)
    )
    await expect(page.locator("#agent-costs")).to_contain_text("planner $")
    await page.locator("#new-limit").press_sequentially("100000")
    await screenshots.shot(page, "budget-used-up")
    await page.click("#raise-budget")
    await expect(page.locator("#task-status")).to_have_text("completed", timeout=scaled(60_000))
    # what each subtask's model calls cost, under it
    await expect(page.locator(".step-spent").first).to_contain_text(
        re.compile(r"^\$[0-9.]+ · \d+ model calls? · [\d,]+ tokens$")
    )

    await page.goto(f"{web}/profile")
    await page.wait_for_selector("#spending")
    await page.locator("#monthly-limit").press_sequentially("abc")
    await page.click("#save-limits")
    await expect(page.locator("#limit-error")).to_have_text(
        "The monthly limit must be an amount in dollars, like 5."
    )
    await page.locator("#monthly-limit").fill("")
    await page.locator("#monthly-limit").press_sequentially("25")
    await page.locator("#daily-tokens-limit").press_sequentially("250k")
    await page.click("#save-limits")
    await expect(page.locator("#limit-error")).to_have_count(0)
    await page.reload()
    await expect(page.locator("#monthly-limit")).to_have_value("25", timeout=scaled(30_000))
    await expect(page.locator("#daily-tokens-limit")).to_have_value("250,000")
    # the tokens the completed task used, today and this month
    await expect(page.locator("#tokens-today")).to_have_text(re.compile(r"^[1-9][\d,]*$"))
    await expect(page.locator("#tokens-month")).to_have_text(re.compile(r"^[1-9][\d,]*$"))
    await screenshots.shot(page, "spending-limits")


def _quarterly_files(folder) -> list[str]:
    """A workbook of two sheets, a picture and a note, to attach to a task."""
    book = Workbook()
    book.active.title = "Q1"
    book.active.append(["region", "amount"])
    book.active.append(["north", 10])
    book.create_sheet("Q2").append(["region", "amount"])
    book["Q2"].append(["south", 12.5])
    book.save(folder / "quarters.xlsx")
    (folder / "chart.png").write_bytes(PNG)
    (folder / "notes.txt").write_text("Numbers are in thousands.\n")
    return [str(folder / name) for name in ("quarters.xlsx", "chart.png", "notes.txt")]


async def _preview_the_quarterly_files(page, screenshots) -> None:
    """The person's files, looked at in place: a workbook's sheets as tables, a picture, text."""
    preview = page.locator("#preview")
    await page.locator(".file", has_text="quarters.xlsx").locator(".preview").click()
    await expect(preview.locator(".preview-table tbody tr td").first).to_have_text("north")
    await page.click("#preview-sheet")
    await page.get_by_role("option", name="Q2").click()
    await expect(preview.locator(".preview-table tbody tr td")).to_have_text(["south", "12.5"])
    await screenshots.shot(page, "workbook-preview")
    await page.locator(".file", has_text="chart.png").locator(".preview").click()
    image = preview.locator("img.preview-image")
    await expect(image).to_be_visible()
    assert await image.evaluate("(img) => img.complete && img.naturalWidth") == 1
    await page.locator(".file", has_text="notes.txt").locator(".preview").click()
    await expect(preview).to_contain_text("Numbers are in thousands.")


async def test_a_stuck_task_is_answered_with_guidance_and_finishes(
    up, llm, page, screenshots, tmp_path
) -> None:
    web = up["web"]
    await sign_up(page, web, "grace")
    await page.fill("#objective", "Find the quarterly numbers in the workbook [lookup]")
    await page.set_input_files("#new-files input[type=file]", _quarterly_files(tmp_path))
    await page.wait_for_selector(".staged-file:has-text('notes.txt')")
    await create_task(page)
    await page.wait_for_selector("#guidance", timeout=scaled(60_000))
    assert "two sheets" in await page.locator("#stuck-reason").inner_text()
    await page.wait_for_selector("#task-status:has-text('needs guidance')")
    await screenshots.shot(page, "stuck")
    await page.fill("#guidance-text", "use the second sheet")
    await page.click("#guide-continue")
    await page.wait_for_selector("#task-status:has-text('completed')", timeout=scaled(90_000))
    await screenshots.shot(page, "answered-and-completed")
    assert await page.locator("#guidance").count() == 0
    asked = [
        r
        for r in llm.asked_for("StepDecision")
        if "[lookup]" in _objective(r) or "lookup" in r["messages"][1]["content"]
    ]
    assert any("use the second sheet" in r["messages"][1]["content"] for r in asked)

    await _preview_the_quarterly_files(page, screenshots)

    # Times are shown as the person's own clock says them: here, signed in from India (+05:30).
    task_url = page.url
    headers = await api_token(up["api"], "grace")
    async with httpx.AsyncClient(base_url=up["api"], headers=headers) as http:
        events = (await http.get(f"/tasks/{task_id_of(page)}/events")).json()["events"]
    first = datetime.fromisoformat(events[0]["created_at"]).astimezone(ZoneInfo("Asia/Kolkata"))
    context = await new_context(page.context.browser, timezone_id="Asia/Kolkata")
    try:
        there = await context.new_page()
        await there.goto(f"{web}/signin")
        await there.fill("#login", "grace")
        await there.fill("#password", PASSWORD)
        await there.click("#submit")
        await there.wait_for_url(f"{web}/")
        await there.goto(task_url)
        shown = there.locator(".event").first.locator(".when")
        await expect(shown).to_have_text(first.strftime("%Y-%m-%d %H:%M:%S"))
        await screenshots.shot(there, "times-in-india")
    finally:
        await context.close()


async def _a_repeating_schedule(page, web: str, screenshots) -> None:
    """A repeating one, in plain words: paused, resumed, cancelled from the schedules page."""
    await page.goto(f"{web}/")
    await page.fill("#objective", "Water the plants [later]")
    await page.get_by_role("radio", name="Repeat").click()
    await page.fill("#repeat-words", "every weekday at 8am")
    await page.wait_for_selector("#repeat-cron:has-text('0 8 * * 1-5')")
    await create_task(page)
    await expect(page.locator("#schedule-rule")).to_contain_text("08:00")
    await expect(page.locator("#starts-at")).to_contain_text("08:00:00")
    await page.goto(f"{web}/")  # the dashboard says it repeats, not only when it starts
    repeating = page.locator("#scheduled .task-row", has_text="Water the plants")
    await expect(repeating.locator(".repeats")).to_contain_text("08:00")
    await page.goto(f"{web}/schedules")
    card = page.locator(".schedule", has_text="Water the plants")
    await card.wait_for()
    assert "08:00" in await card.inner_text()  # the gateway's description of the cron
    await screenshots.shot(page, "schedules")
    await card.locator(".pause").click()
    await card.locator(".schedule-status:has-text('paused')").wait_for()
    await card.locator(".resume").click()
    await card.locator(".schedule-status:has-text('active')").wait_for()
    await card.locator(".cancel-schedule").click()
    await page.get_by_role("alertdialog").get_by_role("button", name="Cancel").click()
    await card.locator(".schedule-status:has-text('cancelled')").wait_for()
    await screenshots.shot(page, "cancelled")


async def test_a_scheduled_task_counts_down_and_starts(up, chromium, screenshots) -> None:
    # The person lives in New York: every time is typed and read on their clock.
    zone = ZoneInfo("America/New_York")
    context = await new_context(chromium, viewport=VIEWPORT, timezone_id=zone.key)
    page = await context.new_page()
    try:
        web = up["web"]
        await sign_up(page, web, "alan")
        await page.fill("#objective", "Write the morning note [later]")
        await page.get_by_role("radio", name="Later").click()
        # time to fill in the form, on the person's clock
        when = (datetime.now(UTC) + timedelta(seconds=scaled(12))).astimezone(zone)
        await page.fill("#run-date", when.strftime("%Y-%m-%d"))
        await page.fill("#run-time", when.strftime("%H:%M:%S"))
        first = await create_task(page)
        await page.wait_for_selector("#task-status:has-text('scheduled')")
        # The task's own page says when it starts, on the person's clock, and how often; no
        # planner is at work yet.
        await expect(page.locator("#starts-at")).to_have_text(when.strftime("%Y-%m-%d %H:%M:%S"))
        await expect(page.locator("#schedule-rule")).to_have_text("Runs once")
        await expect(page.locator("#plan")).to_contain_text(
            "The plan is made when the task starts."
        )
        assert "The planner is at work." not in await page.locator("body").inner_text()
        await screenshots.shot(page, "scheduled-task")
        await page.goto(f"{web}/")
        row = page.locator("#scheduled .task-row", has_text="Write the morning note")
        await row.wait_for()
        countdown = row.locator(".countdown-exact")
        await expect(countdown).not_to_have_text(await countdown.inner_text())  # it counts down
        await screenshots.shot(page, "counting-down")
        # It starts on time (it was kept on the person's clock, not on the server's) and moves
        # out of the scheduled list without a reload.
        await page.locator("#scheduled .task-row").first.wait_for(
            state="detached", timeout=scaled(60_000)
        )
        await page.locator(".task-row", has_text="Write the morning note").first.wait_for()
        await screenshots.shot(page, "started")
        await page.goto(f"{web}/schedules")
        await page.wait_for_selector(
            ".schedule-status:has-text('finished')", timeout=scaled(30_000)
        )
        # A finished schedule links to its run, and to the list of all its runs.
        assert await page.locator(".last-run").get_attribute("href") == f"/tasks/{first}"
        await page.click(".schedule-runs:has-text('1 run so far')")
        await page.wait_for_url(re.compile(r".*/history/?\?schedule=\w+$"))
        await expect(page.locator("#schedule-runs-of")).to_have_text(
            "Runs of “Write the morning note [later]” (once, America/New_York)"
        )
        await expect(page.locator("#total")).to_have_text("1 task")
        await expect(page.locator(".history-row a")).to_have_attribute("href", f"/tasks/{first}")

        await _a_repeating_schedule(page, web, screenshots)
    finally:
        await context.close()


@pytest.mark.parametrize("browser_name", BROWSERS)
async def test_the_live_view_resumes_after_the_connection_drops(
    up, browser_name, page, screenshots
) -> None:
    web, proxy = up["web"], up["proxy"]
    name = f"linus-{browser_name}"
    await sign_up(page, web, name)
    headers = await api_token(up["api"], name)
    await page.locator("#objective").press_sequentially("Write three parts [resume]")
    task_id = await create_task(page)
    await page.locator(".approval-card").first.wait_for(timeout=scaled(60_000))
    await page.wait_for_selector("#live-state:has-text('Live')")
    await screenshots.shot(page, "before-the-drop")

    async with httpx.AsyncClient(base_url=up["api"], headers=headers) as http:

        async def pending() -> list[dict]:
            return (await http.get("/interactions/pending")).json()

        async def approve_one() -> bool:
            for waiting in await pending():
                await http.post(
                    f"/interactions/{waiting['id']}/respond", json={"decision": "approve"}
                )
                return True
            return False

        # The browser loses its connection (the proxy closes it and refuses new ones) while the
        # task moves on: two calls approved elsewhere run, and the third waits.
        proxy.cut()
        try:
            await page.wait_for_selector(
                "#live-state:has-text('Reconnecting')", timeout=scaled(30_000)
            )
            await screenshots.shot(page, "connection-lost")
            for _ in range(2):
                await wait_for(approve_one, timeout=60, what="an approval while cut off")
            await wait_for(pending, timeout=60, what="the third call, proposed while cut off")
        finally:
            proxy.restore()

        # Back: the page catches up by itself and the third call is approved on it.
        await page.wait_for_selector("#live-state:has-text('Live')", timeout=scaled(30_000))
        card = page.locator(".approval-card").first
        await expect(card.locator(".argument-value").first).to_have_text(
            "part3.md", timeout=scaled(30_000)
        )
        await screenshots.shot(page, "caught-up")
        await card.locator(".approve").click()
        await page.wait_for_selector("#task-status:has-text('completed')", timeout=scaled(90_000))
        await screenshots.shot(page, "completed-after-reconnect")
        log = (await http.get(f"/tasks/{task_id}/events", params={"limit": 500})).json()
    await page.click("#timeline-every")  # the routine events too
    await expect(page.locator(".event")).to_have_count(len(log["events"]))
    shown = [
        int(s)
        for s in await page.locator(".event").evaluate_all(
            "(nodes) => nodes.map((n) => n.dataset.seq)"
        )
    ]
    assert sorted(shown) == [e["seq"] for e in log["events"]]  # no gap, no duplicate
    assert sorted(await page.locator(".file-name").all_inner_texts()) == [
        "part1.md",
        "part2.md",
        "part3.md",
    ]
    assert proxy.connections > 1  # the page did connect again


async def test_mail_settings_a_form_to_fill_and_the_history(  # noqa: PLR0915 - one story
    up, mail, page, screenshots
) -> None:
    web = up["web"]
    await sign_up(page, web, "hedy")

    # The mail account is saved from the profile; its password is never shown again.
    await page.goto(f"{web}/profile")
    await page.locator("#policies code", has_text="create_file").wait_for()  # the profile is read

    # Policies in words; one click lets the tools that only look run without asking.
    def policy(tool: str):
        row = page.locator("#policies tr").filter(
            has=page.locator("code", has_text=re.compile(f"^{tool}$"))
        )
        return row.get_by_role("combobox")

    await expect(policy("read_file")).to_have_text("ask every time")
    await page.click("#trust-read-only")
    await expect(policy("read_file")).to_have_text("allow without asking")
    await expect(policy("create_file")).to_have_text("ask every time")
    await expect(policy("send_email")).to_have_text("ask every time")
    await policy("create_file").click()
    await page.get_by_role("option", name="ask once per task").click()
    await expect(policy("create_file")).to_have_text("ask once per task")
    assert "ask_once" not in await page.locator("#policies").inner_text()
    await page.fill("#smtp-host", "127.0.0.1")
    await page.fill("#smtp-port", str(mail.port))
    await page.click("#smtp-security")
    await page.get_by_role("option", name="none").click()
    await page.fill("#smtp-username", "alice")
    await page.fill("#smtp-password", "mail-pass-7")
    await page.fill("#smtp-from_address", "hedy@example.com")
    await page.click("#save-smtp")
    await expect(page.locator("#smtp-password-state")).to_have_text("password stored")
    await page.reload()
    await expect(page.locator("#smtp-password-state")).to_have_text("password stored")
    await expect(page.locator("#smtp-host")).to_have_value("127.0.0.1")  # read back
    assert await page.input_value("#smtp-password") == ""
    assert "mail-pass-7" not in await page.content()
    await screenshots.shot(page, "profile")

    # A PC is paired with the code the profile shows (as troika-desktop sends it), then removed.
    await expect(page.locator("#no-devices")).to_be_visible()
    await page.click("#pair-pc")
    code = (await page.locator("#pairing-code").inner_text()).strip()
    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", code), code
    await expect(page.locator("#devices")).to_contain_text(
        f"troika-desktop pair {up['api']} {code}"
    )
    async with httpx.AsyncClient(base_url=up["api"]) as gateway:
        paired = await gateway.post("/devices/pair", json={"code": code, "name": "hedy-laptop"})
        assert paired.status_code == 201, paired.text
    await page.reload()
    await expect(page.locator(".device-name")).to_have_text("hedy-laptop")
    await expect(page.locator(".device-state")).to_have_text("offline")
    await page.click(".remove-device")
    await expect(page.locator("#no-devices")).to_be_visible()

    # The e-mail waits with a form made from the tool's schema, filled with the agent's values.
    await page.goto(f"{web}/")
    await page.fill("#objective", "Send the weekly note to my boss [mail]")
    await create_task(page)
    form = page.locator(".approval-card .approval-form")
    await form.wait_for(timeout=scaled(60_000))
    assert await page.input_value("#field-to") == "boss@example.com"
    assert await page.input_value("#field-subject") == "Weekly note"
    assert await page.input_value("#field-body") == "All is well."
    await screenshots.shot(page, "email-form")
    await page.fill("#field-subject", "Weekly note (checked)")
    await page.fill("#field-to", "boss@example.com, me@example.com")
    await page.locator(".approval-card .approve").click()
    await page.wait_for_selector("#task-status:has-text('completed')", timeout=scaled(90_000))
    [sent] = [m for m in mail.received if m.message["Subject"] == "Weekly note (checked)"]
    assert sent.login == "alice"
    assert sent.recipients == ["boss@example.com", "me@example.com"]
    assert sent.message.get_content().strip() == "All is well."

    # History: how the person's tasks stand, sorted as asked; find it, delete it.
    await page.goto(f"{web}/history")
    await expect(page.locator("#stat-total")).to_have_text("1")
    await expect(page.locator("#stat-completed")).to_have_text("1")
    await expect(page.locator("#stat-failed")).to_have_text("0")
    await page.click("#sort")
    await page.get_by_role("option", name="most expensive first").click()
    await expect(page.locator("#sort")).to_have_text("most expensive first")
    await page.fill("#search", "weekly note")
    row = page.locator(".history-row", has_text="Send the weekly note")
    await row.wait_for()
    assert await page.locator(".history-row").count() == 1
    await screenshots.shot(page, "history")
    await row.locator(".task-menu").click()
    await page.get_by_role("menuitem", name="Delete").click()
    await row.wait_for(state="detached")
    assert await page.locator(".history-row").count() == 0

    # Signing out ends the session: the pages send the person to sign in again.
    await page.click("#sign-out")
    await page.wait_for_url(f"{web}/signin")
    await page.goto(f"{web}/history")
    await page.wait_for_url(re.compile(r".*/signin\?next=/history/?$"))


async def test_social_accounts_connect_by_token_and_by_signing_in_and_are_removed(  # noqa: PLR0915
    up, platforms, page, screenshots
) -> None:
    web = up["web"]
    await sign_up(page, web, "ida")
    headers = await api_token(up["api"], "ida")
    # X's sign-in (no consent page on the test server) agrees as its first user: this one.
    platforms.add_x_user(username="ida_signs_in", name="Ida")
    instagram = platforms.add_instagram_user(username="ida.pictures")

    async def connected() -> list[dict]:
        async with httpx.AsyncClient(base_url=up["api"], headers=headers) as http:
            answer = await http.get("/social/accounts")
        assert answer.status_code == 200, answer.text
        return answer.json()

    await page.goto(f"{web}/profile")
    section = page.locator("#social-accounts")
    await expect(section.locator("#no-social-accounts")).to_be_visible()
    await expect(page.locator("#connect-twitter")).to_have_text("Connect with X (Twitter)")
    assert await page.locator("#connect-instagram").count() == 0  # no sign-in set up for it
    assert await page.get_attribute("#social-token", "type") == "password"

    # A token the platform refuses: its answer shows beside the form, nothing is connected.
    await page.click("#social-platform")
    await page.get_by_role("option", name="Instagram").click()
    await page.fill("#social-token", "IGAA-not-a-token-of-anyone")
    await page.click("#connect-social")
    await expect(page.locator("#social-access_token-error")).to_contain_text(
        "Instagram refused the token"
    )
    assert await connected() == []

    # The Instagram account's own token: listed, and the field is empty again.
    await page.fill("#social-token", instagram.access_token)
    await page.fill("#social-expires-in", "3600")
    await page.click("#connect-social")
    row = page.locator("#social-account-instagram-ida-pictures")
    await expect(row.locator(".social-name")).to_have_text("@ida.pictures")
    await expect(row.locator(".social-platform")).to_have_text("Instagram")
    await expect(row.locator(".social-expires")).to_contain_text("token expires")
    await expect(page.locator("#social-token")).to_have_value("")
    assert await page.locator("#social-access_token-error").count() == 0
    assert instagram.access_token not in await page.content()
    [account] = await connected()
    assert (account["platform"], account["username"]) == ("instagram", "ida.pictures")
    await screenshots.shot(page, "instagram-connected")

    # Removed: gone from the page and from the gateway.
    await row.locator(".remove-social-account").click()
    await expect(section.locator("#no-social-accounts")).to_be_visible()
    assert await row.count() == 0
    assert await connected() == []

    # Through X's sign-in: the browser goes to X and comes back to the web app, which finishes
    # connecting and shows the profile with the account.
    await page.click("#connect-twitter")
    await page.wait_for_url(f"{web}/profile", timeout=scaled(30_000))
    row = page.locator("#social-account-twitter-ida_signs_in")
    await expect(row.locator(".social-name")).to_have_text("@ida_signs_in")
    await expect(row.locator(".social-platform")).to_have_text("X (Twitter)")
    [account] = await connected()
    assert (account["platform"], account["username"]) == ("twitter", "ida_signs_in")
    assert account["renewable"]  # it came with a refresh token, and the sign-in is set up
    authorized = [r for r in platforms.requests_to("x") if r.path == "/i/oauth2/authorize"]
    assert authorized[-1].query["redirect_uri"] == [f"{web}/profile/connected"]
    await screenshots.shot(page, "x-connected")

    # Coming back with a sign-in the gateway did not start says so, and connects nothing.
    await page.goto(f"{web}/profile/connected?state=forged&code=made-up")
    await expect(page.locator("#social-sign-in-error")).to_contain_text("unknown or expired")
    await screenshots.shot(page, "sign-in-refused")
    assert len(await connected()) == 1


async def test_a_browser_action_shows_the_page_and_the_password_goes_in_a_masked_field(
    up, site, page, screenshots
) -> None:
    web = up["web"]
    await sign_up(page, web, "hopper")
    await page.fill("#objective", f"Sign in to my shop at {site.url}/ [browse]")
    await create_task(page)

    card = page.locator(".approval-card").first
    await card.wait_for(timeout=scaled(60_000))
    assert await card.locator(".tool").inner_text() == "browser_open"
    assert await card.locator(".page-shot").count() == 0  # no page yet
    await card.locator(".approve").click()

    # Typing into the page asks, with the page it types into and a form of what it types.
    fill = page.locator(".approval-card .tool:has-text('browser_fill')")
    await fill.wait_for(timeout=scaled(60_000))
    card = page.locator(".approval-card").first
    shot = card.locator(".page-shot img")
    await shot.wait_for()
    assert (await shot.get_attribute("src")).startswith("data:image/png;base64,")
    assert await page.input_value("#field-Username") == USERNAME
    assert await page.get_attribute("#field-Password", "type") == "password"
    await page.fill("#field-Password", SITE_PASSWORD)
    await screenshots.shot(page, "browser-fill")
    await card.locator(".approve").click()

    click = page.locator(".approval-card .tool:has-text('browser_click')")
    await click.wait_for(timeout=scaled(60_000))
    await page.locator(".approval-card .risk:has-text('external')").wait_for()
    await page.locator(".approval-card .approve").first.click()
    await page.wait_for_selector("#task-status:has-text('completed')", timeout=scaled(90_000))
    assert site.logins == [USERNAME]  # the password typed in the form signed in
