"""The desktop's actions on a real X11 screen (Xvfb, openbox) with a real Tk application."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from troika_desktop.x11 import Box, X11Desktop, locate
from troika_testkit.pace import scaled

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [
    pytest.mark.xdist_group("desktop"),
    # pyautogui (through python-xlib) keeps its display connection, and the Xauthority file it
    # read, open for the life of the process: Python reports them when they are collected.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

MAGENTA = (255, 0, 255)


def read_back(saved: Path) -> str:
    deadline = time.monotonic() + scaled(10)
    while time.monotonic() < deadline:
        if saved.exists():
            return saved.read_text(encoding="utf-8")
        time.sleep(0.05)
    raise AssertionError("the form saved nothing")


def colours(image: Image.Image) -> set[tuple[int, int, int]]:
    return {colour for _, colour in image.getcolors(maxcolors=1 << 16) or []}


def press_the_button(desktop: X11Desktop) -> Box:
    button = desktop.find_on_screen(Image.new("RGB", (16, 16), MAGENTA))
    assert button is not None, "the magenta button is not on the screen"
    desktop.click(*button.center)
    return button


@pytest.mark.parametrize(
    "text",
    ["plain ASCII, typed key by key", "Grüße, señor — 東京 and ☃ and 🚀"],
    ids=["ascii", "unicode"],
)
def test_text_typed_into_a_field_reads_back_the_same(desktop, form, text) -> None:
    window, saved = form("Troika Form")
    desktop.focus(window)  # its text field has the keyboard within the window
    desktop.type_text(text)
    press_the_button(desktop)  # found by its image, not by coordinates
    assert read_back(saved) == text


def test_windows_are_found_by_title_and_focused(desktop, form) -> None:
    alpha, _ = form("Alpha notes")
    beta, _ = form("Report (v1.2) — Beta 東京")
    assert [w.id for w in desktop.windows("report (V1.2)")] == [beta.id]  # literal, any case
    assert [w.title for w in desktop.windows("— beta 東京")] == ["Report (v1.2) — Beta 東京"]
    assert desktop.windows("no such window") == []
    desktop.focus(alpha)
    assert desktop.active_window() == alpha.id
    desktop.focus(beta)
    assert desktop.active_window() == beta.id


def test_a_window_that_closes_while_the_windows_are_listed_is_left_out(
    desktop, form, x_display
) -> None:
    from Xlib import X, Xatom  # noqa: PLC0415 - needs the display
    from Xlib import display as xdisplay  # noqa: PLC0415

    window, _ = form("Still open")
    connection = xdisplay.Display(x_display.env["DISPLAY"])
    try:
        root = connection.screen().root
        client_list = connection.intern_atom("_NET_CLIENT_LIST")
        listed = list(root.get_full_property(client_list, X.AnyPropertyType).value)
        gone = connection.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
        gone.destroy()
        connection.sync()
        # the window manager's list as it is read in the instant after a window closed
        root.change_property(client_list, Xatom.WINDOW, 32, [*listed, gone.id])
        connection.sync()
        assert [w.id for w in desktop.windows("Still open")] == [window.id]
        assert gone.id not in [window_id for window_id, _ in desktop.titles()]
    finally:
        root.change_property(client_list, Xatom.WINDOW, 32, listed)
        connection.close()


def test_a_region_screenshot_holds_exactly_that_part_of_the_screen(desktop, form) -> None:
    window, _ = form("Troika Form")
    desktop.focus(window)
    button = desktop.find_on_screen(Image.new("RGB", (16, 16), MAGENTA))
    assert button is not None
    inside = desktop.screenshot(Box(button.left, button.top, 16, 16))
    assert inside.size == (16, 16)
    assert colours(inside) == {MAGENTA}
    beside = desktop.screenshot(Box(window.box.left, window.box.top + 60, 16, 16))
    assert MAGENTA not in colours(beside)
    whole = desktop.screenshot()
    assert whole.size == (1024, 768)
    assert X11Desktop.png(inside).startswith(b"\x89PNG\r\n\x1a\n")


def test_nothing_found_is_said_plainly(desktop) -> None:
    assert desktop.find_on_screen(Image.new("RGB", (9, 9), (1, 2, 3))) is None


def test_an_image_is_found_within_a_tolerance_and_a_region() -> None:
    screen = Image.new("RGB", (200, 100), (255, 255, 255))
    screen.paste(Image.new("RGB", (10, 10), (250, 5, 250)), (120, 40))
    needle = Image.new("RGB", (10, 10), MAGENTA)
    assert locate(needle, screen) is None  # not exactly
    assert locate(needle, screen, tolerance=8) == Box(120, 40, 10, 10)
    region = Box(100, 20, 60, 60)
    assert locate(needle, screen.crop((100, 20, 160, 80)), tolerance=8, origin=region) == Box(
        120, 40, 10, 10
    )


def test_the_kill_switch_hotkey_is_heard_whichever_window_has_the_keyboard(
    x_display, desktop, form
) -> None:
    import subprocess  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from troika_desktop.killswitch import Hotkey  # noqa: PLC0415

    window, _ = form("Busy Form")
    desktop.focus(window)
    heard = threading.Event()
    hotkey = Hotkey(x_display.env["DISPLAY"], heard.set).start()
    try:
        subprocess.run(["xdotool", "key", "ctrl+alt+Escape"], env={**x_display.env}, check=True)
        assert heard.wait(scaled(5)), "the kill switch was not heard"
    finally:
        hotkey.stop()


def test_the_kill_switch_stops_typing_between_pieces(desktop, form) -> None:
    import threading  # noqa: PLC0415

    from troika_desktop.x11 import Halted  # noqa: PLC0415

    window, saved = form("Troika Form")
    desktop.focus(window)
    text = "abcdefghij" * 40
    halted: list[Exception] = []

    def type_it() -> None:
        try:
            desktop.type_text(text)
        except Halted as exc:
            halted.append(exc)

    typing = threading.Thread(target=type_it)
    typing.start()
    time.sleep(0.3)
    desktop.halt.set()
    typing.join(scaled(30))
    desktop.halt.clear()
    assert halted, "typing went on to the end"
    press_the_button(desktop)
    typed = read_back(saved)
    assert text.startswith(typed)
    assert len(typed) < len(text)
