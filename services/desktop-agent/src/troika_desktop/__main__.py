"""``troika-desktop``: the agent a person runs on their own PC.

troika-desktop pair http://gateway:8000 ABCD-2345 [--name laptop]
troika-desktop run [--allow "Firefox" --allow "Calculator"] [--per-minute 30]
troika-desktop status
troika-desktop forget
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from troika_desktop.pairing import Pairing, PairingError, PairingStore, default_home, pair

__all__ = ["main"]


def _say(line: str) -> None:
    print(f"{datetime.now(UTC).astimezone():%H:%M:%S}  {line}", flush=True)


def _store(args: argparse.Namespace) -> PairingStore:
    return PairingStore(args.home, keyring=not args.no_keyring)


def _pair(args: argparse.Namespace) -> int:
    try:
        pairing = pair(args.gateway, args.code, args.name)
    except PairingError as exc:
        print(f"troika-desktop: {exc}", file=sys.stderr)
        return 1
    where = _store(args).save(pairing)
    kept = "the system keyring" if where == "keyring" else where
    print(f"Paired as {pairing.name!r} with {pairing.gateway}; credential kept in {kept}.")
    print("Start taking approved actions with: troika-desktop run")
    return 0


def _paired(args: argparse.Namespace) -> Pairing | None:
    """The kept pairing; ``None`` (and why, on stderr) when there is none to use."""
    try:
        pairing = _store(args).load()
    except PairingError as exc:
        print(f"troika-desktop: {exc}", file=sys.stderr)
        return None
    if pairing is None:
        print("troika-desktop: not paired: troika-desktop pair <gateway> <code>", file=sys.stderr)
    return pairing


def _run(args: argparse.Namespace) -> int:
    pairing = _paired(args)
    if pairing is None:
        return 1
    if sys.platform != "linux" or not os.environ.get("DISPLAY"):
        print(
            "troika-desktop: this version acts on Linux X11 desktops (DISPLAY is not set here)",
            file=sys.stderr,
        )
        return 1
    from troika_desktop.actions import Actions  # noqa: PLC0415 - needs the display
    from troika_desktop.agent import Agent  # noqa: PLC0415
    from troika_desktop.killswitch import HOTKEY, Hotkey  # noqa: PLC0415
    from troika_desktop.ledger import Ledger  # noqa: PLC0415
    from troika_desktop.shots import ShotStore  # noqa: PLC0415
    from troika_desktop.x11 import X11Desktop  # noqa: PLC0415

    desktop = X11Desktop()
    actions = Actions(desktop, ShotStore(), allowed=tuple(args.allow))
    agent = Agent(
        pairing,
        actions,
        Ledger(args.home / "done.jsonl"),
        per_minute=args.per_minute,
        say=_say,
    )
    limits = (
        f"only windows titled {', '.join(map(repr, args.allow))}" if args.allow else "any window"
    )
    _say(
        f"troika-desktop for {pairing.name!r}: {limits}; {args.per_minute} actions a minute at most"
    )

    def pressed() -> None:
        desktop.halt.set()
        agent.kill()

    try:
        hotkey: Hotkey | None = Hotkey(desktop.display, pressed).start()
        _say(f"kill switch: {HOTKEY}, or move the mouse into a corner of the screen")
    except OSError as exc:
        hotkey = None
        _say(f"{exc}; kill switch: move the mouse into a corner of the screen")

    async def serve() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        return await agent.run(stop)

    try:
        code = asyncio.run(serve())
    finally:
        if hotkey is not None:
            hotkey.stop()
    _say("stopped")
    return code


def _status(args: argparse.Namespace) -> int:
    pairing = _paired(args)
    if pairing is None:
        return 1
    print(f"paired as {pairing.name!r} (device {pairing.device_id}) with {pairing.gateway}")
    return 0


def _forget(args: argparse.Namespace) -> int:
    if _store(args).forget():
        print("this PC's pairing is forgotten here; remove it from your profile too")
        return 0
    print("not paired")
    return 1


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(
        prog="troika-desktop",
        description="Runs the desktop actions you approve in Troika on this PC.",
    )
    top.add_argument(
        "--home",
        type=Path,
        default=default_home(),
        help="where the pairing and the record of actions are kept",
    )
    top.add_argument(
        "--no-keyring",
        action="store_true",
        help="keep the credential in a private file, not the system keyring",
    )
    commands = top.add_subparsers(dest="command", required=True)
    paired = commands.add_parser("pair", help="pair this PC with your account")
    paired.add_argument("gateway", help="the gateway's address, e.g. http://127.0.0.1:8000")
    paired.add_argument("code", help="the one-time code from your profile")
    paired.add_argument("--name", help="what to call this PC (default: its host name)")
    paired.set_defaults(handler=_pair)
    running = commands.add_parser("run", help="take approved actions until stopped")
    running.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="TITLE",
        help="only act on windows whose title contains this (repeatable)",
    )
    running.add_argument("--per-minute", type=int, default=30,
                         help="the most actions begun in a minute (default 30)")  # fmt: skip
    running.set_defaults(handler=_run)
    commands.add_parser("status", help="show the pairing").set_defaults(handler=_status)
    commands.add_parser("forget", help="forget the pairing on this PC").set_defaults(
        handler=_forget
    )
    return top


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    args = parser().parse_args(argv)
    if getattr(args, "per_minute", 1) < 1:
        print("troika-desktop: --per-minute must be at least 1", file=sys.stderr)
        return 2
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
