"""The browser tools: each call acts on the task's own page and says what the page shows now.

A call that changes the page answers with where the page is now and the start of its text
(validation errors included), so the agent sees the effect without another call; what the page
tried to reach and was refused is said too. Password fields' values never appear in an output.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from troika_shared.browser import open_typed
from troika_shared.desktop import keep_shot
from troika_shared.messages import ToolOutcome
from troika_shared.vault import VaultError

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

    from troika_executor.browser.sessions import Browsers, Session
    from troika_executor.workspace import Workspace
    from troika_shared.browser import (
        BrowserClickArgs,
        BrowserDownloadArgs,
        BrowserFillArgs,
        BrowserGetTextArgs,
        BrowserHandOverArgs,
        BrowserOpenArgs,
        BrowserPressArgs,
        BrowserScreenshotArgs,
        BrowserScrollArgs,
        BrowserSelectArgs,
    )

__all__ = ["BrowserCall"]

_SUMMARY_CHARS = 3000
MAX_DOWNLOAD_BYTES = 100 << 20

# The page as text: its visible text, then its links and its fields (a field's value is shown,
# a password's never; a field the browser finds invalid says why).
_READ_PAGE = """(root) => {
  const scope = root || document.body;
  if (!scope) return {text: "", links: [], fields: []};
  const links = [...scope.querySelectorAll("a[href]")].slice(0, 80).map(a => ({
    text: (a.innerText || a.getAttribute("aria-label") || "").trim().replace(/\\s+/g, " "),
    href: a.href,
  })).filter(l => l.href.startsWith("http"));
  const labelOf = (el) => {
    if (el.labels && el.labels.length) return el.labels[0].innerText.trim();
    return el.getAttribute("aria-label") || el.getAttribute("placeholder") ||
      el.getAttribute("name") || el.id || "";
  };
  const fields = [...scope.querySelectorAll("input, textarea, select")]
    .filter(el => el.type !== "hidden").slice(0, 60).map(el => ({
      label: labelOf(el).replace(/\\s+/g, " "),
      type: el.tagName === "SELECT" ? "select" : (el.type || el.tagName.toLowerCase()),
      value: el.type === "password" ? (el.value ? "(hidden)" : "") :
        (el.type === "checkbox" || el.type === "radio") ? (el.checked ? "checked" : "") :
        el.tagName === "SELECT" ? [...el.selectedOptions].map(o => o.text).join(", ") :
        (el.value || "").slice(0, 200),
      options: el.tagName === "SELECT" ? [...el.options].slice(0, 30).map(o => o.text) : [],
      problem: el.willValidate && !el.checkValidity() ? el.validationMessage : "",
    }));
  return {text: scope.innerText || "", links, fields};
}"""


def _failure(exc: PlaywrightError) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    first = re.sub(r"^\w+\.\w+: ", "", first)
    if isinstance(exc, PlaywrightTimeout):
        return f"timed out: {first}"
    return first[:500]


class BrowserCall:
    """One browser call of a task: the pool, the task's folder and whether the model reads
    images (then the page's screenshot comes with the outcome)."""

    def __init__(self, browsers: Browsers, workspace: Workspace, *, images: bool) -> None:
        self.browsers = browsers
        self.workspace = workspace
        self.task_id = workspace.root.name
        self.images = images

    # --- the tools -----------------------------------------------------------------------------

    async def open(self, args: BrowserOpenArgs) -> ToolOutcome:
        async with self.browsers.use(self.task_id) as session:
            try:
                response = await session.page.goto(args.url)
            except PlaywrightError as exc:
                return await self._finish(session, error=f"could not open {args.url}: "
                                          f"{_failure(exc)}")  # fmt: skip
            if response is not None and response.headers.get("x-troika-refused"):
                return await self._finish(session, error=(await response.text()).strip())
            status = f" (HTTP {response.status})" if response and response.status >= 400 else ""
            return await self._finish(session, f"opened {args.url}{status}", summary=True)

    async def click(self, args: BrowserClickArgs) -> ToolOutcome:
        async with self.browsers.use(self.task_id) as session:
            target, note = await _one(_target(session.page, args))
            if target is None:
                return await self._finish(session, error=f"nothing on the page is "
                                          f"{args.described()}")  # fmt: skip
            try:
                await target.click()
                await session.page.wait_for_load_state()
            except PlaywrightError as exc:
                return await self._finish(session, error=_failure(exc))
            return await self._finish(session, f"clicked {args.described()}{note}", summary=True)

    async def fill(self, args: BrowserFillArgs) -> ToolOutcome:
        async with self.browsers.use(self.task_id) as session:
            done: list[str] = []
            for name, value in args.values.items():
                field = await _field(session.page, name)
                if field is None:
                    known = await _field_names(session.page)
                    return await self._finish(session, error=(
                        f"there is no field {name!r} on the page"
                        + (f"; its fields: {', '.join(known)}" if known else "")
                        + (f" (typed so far: {'; '.join(done)})" if done else "")
                    ))  # fmt: skip
                try:
                    text, sealed = open_typed(self.browsers.state_key, self.task_id, value)
                except VaultError:
                    return await self._finish(session, error=(
                        f"{name}: what the person typed could not be opened here; ask them again"
                    ))  # fmt: skip
                try:
                    secret = sealed or await field.get_attribute("type") == "password"
                    await field.fill(text)
                except PlaywrightError as exc:
                    return await self._finish(session, error=f"{name}: {_failure(exc)}")
                shown = f"(a password, {len(text)} characters, hidden)" if secret else repr(text)
                done.append(f"{name}: {shown}")
            return await self._finish(session, "typed " + "; ".join(done), summary=True)

    async def select(self, args: BrowserSelectArgs) -> ToolOutcome:
        async with self.browsers.use(self.task_id) as session:
            field = await _field(session.page, args.field)
            if field is None:
                return await self._finish(session, error=f"there is no field {args.field!r}")
            try:
                chosen = await field.select_option(list(args.options))
            except PlaywrightError as exc:
                return await self._finish(session, error=f"{args.field}: {_failure(exc)}")
            return await self._finish(session, f"chose {', '.join(chosen)} in {args.field}",
                                      summary=True)  # fmt: skip

    async def press(self, args: BrowserPressArgs) -> ToolOutcome:
        async with self.browsers.use(self.task_id) as session:
            try:
                if args.field:
                    field = await _field(session.page, args.field)
                    if field is None:
                        return await self._finish(session, error=f"there is no field "
                                                  f"{args.field!r}")  # fmt: skip
                    await field.press(args.key)
                else:
                    await session.page.keyboard.press(args.key)
                await session.page.wait_for_load_state()
            except PlaywrightError as exc:
                return await self._finish(session, error=_failure(exc))
            return await self._finish(session, f"pressed {args.key}", summary=True)

    async def scroll(self, args: BrowserScrollArgs) -> ToolOutcome:
        async with self.browsers.use(self.task_id) as session:
            page = session.page
            try:
                if args.selector:
                    await page.locator(args.selector).first.scroll_into_view_if_needed()
                else:
                    sign = 1 if args.direction == "down" else -1
                    height = page.viewport_size["height"] if page.viewport_size else 800
                    await page.evaluate(
                        "(d) => window.scrollBy(0, d)", sign * args.screens * height
                    )
                at = await page.evaluate(
                    "() => [Math.round(scrollY), document.documentElement.scrollHeight]"
                )
            except PlaywrightError as exc:
                return await self._finish(session, error=_failure(exc))
            return await self._finish(session, f"scrolled; now at {at[0]} of {at[1]} pixels")

    async def get_text(self, args: BrowserGetTextArgs) -> ToolOutcome:
        async with self.browsers.use(self.task_id) as session:
            try:
                text = await _readable(session.page, args.selector)
            except PlaywrightError as exc:
                return await self._finish(session, error=_failure(exc))
            if len(text) > args.max_chars:
                text = text[: args.max_chars] + (
                    f"\n[truncated: {len(text) - args.max_chars} more characters]"
                )
            return await self._finish(session, text)

    async def screenshot(self, args: BrowserScreenshotArgs) -> ToolOutcome:
        async with self.browsers.use(self.task_id) as session:
            chosen = args.path
            if chosen is None:
                chosen = await anyio.to_thread.run_sync(self._next_screenshot_name)
            target = self.workspace.path(chosen)
            await anyio.to_thread.run_sync(lambda: target.parent.mkdir(parents=True, exist_ok=True))
            try:
                await session.page.screenshot(path=target, full_page=args.full_page, type="png")
            except PlaywrightError as exc:
                return await self._finish(session, error=_failure(exc))
            relative = str(target.relative_to(self.workspace.root))
            return await self._finish(session, f"saved {relative}", files=(relative,))

    async def download(self, args: BrowserDownloadArgs) -> ToolOutcome:
        async with self.browsers.use(self.task_id) as session:
            target, _ = await _one(_target(session.page, args))
            if target is None:
                return await self._finish(session, error=f"nothing on the page is "
                                          f"{args.described()}")  # fmt: skip
            try:
                async with session.page.expect_download(timeout=120_000) as info:
                    await target.click()
                download = await info.value
                problem = await download.failure()
                if problem:
                    return await self._finish(session, error=f"the download failed: {problem}")
                name = args.save_as or _safe_name(download.suggested_filename)
                destination = self.workspace.path(name)
                await anyio.to_thread.run_sync(
                    lambda: destination.parent.mkdir(parents=True, exist_ok=True)
                )
                await download.save_as(destination)
            except PlaywrightError as exc:
                return await self._finish(session, error=f"no download came: {_failure(exc)}")
            size = destination.stat().st_size
            if size > MAX_DOWNLOAD_BYTES:
                destination.unlink(missing_ok=True)
                return await self._finish(session, error=f"the file is {size:,} bytes, more "
                                          f"than the {MAX_DOWNLOAD_BYTES:,} kept")  # fmt: skip
            relative = str(destination.relative_to(self.workspace.root))
            return await self._finish(session, f"downloaded {relative} ({size:,} bytes)",
                                      files=(relative,))  # fmt: skip

    async def close(self, _: object) -> ToolOutcome:
        await self.browsers.forget(self.task_id)
        return ToolOutcome(ok=True, output="closed the browser; its cookies are forgotten")

    async def hand_over(self, args: BrowserHandOverArgs) -> ToolOutcome:
        async with self.browsers.use(self.task_id) as session:
            where = f"{await session.page.title()} — {session.page.url}"
            png = await self.browsers.store(session)
        return ToolOutcome(
            ok=False,
            needs_person=True,
            error=f"the agent hands the page over to you: {args.message} (the page: {where})",
            images=await self._images(png),
        )

    # --- shared ---------------------------------------------------------------------------------

    async def _finish(
        self,
        session: Session,
        output: str = "",
        *,
        error: str | None = None,
        summary: bool = False,
        files: tuple[str, ...] = (),
    ) -> ToolOutcome:
        """The outcome, with the page now (title, address, start of its text) when asked and
        what the page was refused."""
        page = session.page
        parts = [output] if output else []
        if summary or error:
            try:
                title = await page.title()
                text = await _readable(page, None)
            except PlaywrightError:
                title, text = "", ""
            if len(text) > _SUMMARY_CHARS:
                text = text[:_SUMMARY_CHARS] + "\n[… browser_get_text reads the rest]"
            parts.append(f"The page now: {title or '(no title)'} — {page.url}\n{text}".strip())
        refused = self.browsers.egress.refusals(session.proxy_user)
        if refused:
            parts.append("Refused (not a public address): " + "; ".join(refused[:10]))
        png = await self.browsers.store(session)
        return ToolOutcome(
            ok=error is None,
            output="\n\n".join(parts),
            error=error,
            files=files,
            images=await self._images(png),
        )

    async def _images(self, png: bytes | None) -> tuple[str, ...]:
        if not self.images or png is None:
            return ()
        return (await anyio.to_thread.run_sync(keep_shot, self.browsers.data_dir, self.task_id,
                                               png),)  # fmt: skip

    def _next_screenshot_name(self) -> str:
        n = 1
        while self.workspace.path(f"screenshots/page-{n}.png").exists():
            n += 1
        return f"screenshots/page-{n}.png"


# --- finding things on the page ------------------------------------------------------------------


def _target(page: Page, args: Any) -> list[Locator]:  # noqa: ANN401 - any targeting arguments
    if args.selector:
        return [page.locator(args.selector)]
    if args.role:
        return [page.get_by_role(args.role, name=args.name) if args.name
                else page.get_by_role(args.role)]  # fmt: skip
    text = args.text
    return [
        page.get_by_role("button", name=text, exact=True),
        page.get_by_role("link", name=text, exact=True),
        page.get_by_text(text, exact=True),
        page.get_by_role("button", name=text),
        page.get_by_role("link", name=text),
        page.get_by_text(text),
    ]


async def _one(candidates: list[Locator]) -> tuple[Locator | None, str]:
    """The first candidate that finds something (its first visible match, when several)."""
    for locator in candidates:
        try:
            count = await locator.count()
        except PlaywrightError:
            continue  # not a valid selector
        if count == 1:
            return locator, ""
        if count > 1:
            visible = locator.locator("visible=true")
            chosen = visible.first if await visible.count() else locator.first
            return chosen, f" (the first of {count} matches)"
    return None, ""


async def _field(page: Page, name: str) -> Locator | None:
    candidates = [
        page.get_by_label(name, exact=True),
        page.get_by_placeholder(name, exact=True),
        page.locator(f"[name={_quoted(name)}]"),
        page.locator(f"[id={_quoted(name)}]"),
        page.get_by_label(name),
        page.get_by_placeholder(name),
        page.locator(name),
    ]
    found, _ = await _one(candidates)
    return found


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def _field_names(page: Page) -> list[str]:
    read = await page.evaluate(_READ_PAGE, None)
    return [f["label"] for f in read["fields"] if f["label"]][:30]


async def _readable(page: Page, selector: str | None) -> str:
    """The page (or the part ``selector`` finds) as text, then its links and fields."""
    if selector:
        handle = await page.locator(selector).first.element_handle(timeout=5000)
        read = await page.evaluate(_READ_PAGE, handle)
    else:
        read = await page.evaluate(_READ_PAGE, None)
    text = re.sub(r"\n{3,}", "\n\n", read["text"]).strip()
    parts = [text]
    if read["fields"]:
        lines = []
        for field in read["fields"]:
            line = f"- {field['label'] or '(unlabelled)'} [{field['type']}]"
            if field["value"]:
                line += f" = {field['value']}"
            if field["options"]:
                line += f" (options: {', '.join(field['options'])})"
            if field["problem"]:
                line += f" — invalid: {field['problem']}"
            lines.append(line)
        parts.append("Fields:\n" + "\n".join(lines))
    if read["links"]:
        links = "\n".join(f"- {link['text'] or '(no text)'}: {link['href']}"
                          for link in read["links"])  # fmt: skip
        parts.append("Links:\n" + links)
    return "\n\n".join(part for part in parts if part)


def _safe_name(suggested: str) -> str:
    name = PurePosixPath(suggested.replace("\\", "/")).name.lstrip(".") or "download"
    return f"downloads/{name}"
