"""The ``troika`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from troika.devices_cli import run_devices
from troika.local_llm import NOTICE, model_name
from troika.settings import UpSettings
from troika.stack import Component, ModelMissing, NotReady, PortInUse, Stack
from troika.task_cli import local_zone, run_task
from troika_shared.logs import configure_logging

EXIT_NOT_READY = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="troika", description="Troika, a multi-agent task assistant."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser(
        "up",
        help="run the whole system on this machine",
        description=(
            "Start the whole system on this machine: an embedded NATS and Valkey (unless "
            "TROIKA_NATS_URL / TROIKA_REDIS_URL name servers to use), the gateway, every "
            "agent service and the web app, supervised. Ctrl+C stops everything."
        ),
    )
    up.add_argument("--check", action="store_true", help="start, wait until ready, print, stop")
    up.add_argument("--data-dir", type=Path, help="where data is kept (default: ./var)")
    up.add_argument("--port", type=int, dest="gateway_port", help="the gateway API's port")
    up.add_argument("--web-port", type=int, dest="web_port", help="the web app's port")
    up.add_argument("--no-web", action="store_const", const=False, dest="web",
                    help="leave the web app out (the API alone)")  # fmt: skip
    up.add_argument("--replicas", type=int, dest="agent_replicas", help="processes per agent")
    up.add_argument("--timeout", type=float, dest="ready_timeout_s", help="seconds to wait")
    task = commands.add_parser(
        "task",
        help="run a task from the terminal, answering its approvals at the prompt",
        description=(
            "Create a task and follow it live: every action waits for your answer at the "
            "prompt (with its complete arguments), and stuck agents ask for your guidance. "
            "Signs in with the kept session, TROIKA_USERNAME / TROIKA_PASSWORD, or a prompt."
        ),
    )
    task.add_argument("objective", nargs="?", help="what you want done")
    task.add_argument("--file", type=Path, action="append", default=[], dest="files",
                      help="attach a file (repeat for more)")  # fmt: skip
    when = task.add_mutually_exclusive_group()
    when.add_argument("--at", metavar="TIME", type=_time, dest="run_at",
                      help="run it once, later: '2026-12-01 09:00' (in --timezone) or an ISO "
                      "time with an offset")  # fmt: skip
    when.add_argument("--cron", metavar="EXPR",
                      help="run it on a repeating schedule, e.g. '0 8 * * 1-5' "
                      "(in --timezone)")  # fmt: skip
    task.add_argument("--timezone", metavar="ZONE", default=None,
                      help="an IANA zone for --at and --cron (default: this "
                      "machine's)")  # fmt: skip
    task.add_argument("--resume", metavar="TASK_ID", help="follow an existing task instead")
    task.add_argument("--api", default=None, help="the gateway (default: TROIKA_API_URL or "
                      "http://127.0.0.1:8000)")  # fmt: skip
    devices = commands.add_parser(
        "devices",
        help="the PCs paired with your account for the desktop tools",
        description="Pair a PC for the desktop tools (troika-desktop), list your PCs, or "
        "remove one.",
    )
    devices.add_argument("action", choices=("pair-code", "list", "remove"))
    devices.add_argument("device_id", nargs="?", help="the PC to remove (see list)")
    devices.add_argument("--api", default=None, help="the gateway (default: TROIKA_API_URL or "
                         "http://127.0.0.1:8000)")  # fmt: skip
    return parser


def _time(text: str) -> str:
    """``--at``: a date and time, as ISO 8601 (a space may stand for the ``T``)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        message = f"not a date and time: {text!r} (e.g. '2026-12-01 09:00')"
        raise argparse.ArgumentTypeError(message) from None
    return moment.isoformat()  # with seconds, as the API reads it (RFC 3339)


def _table(rows: list[Component]) -> str:
    header = ("component", "status", "address", "")
    lines = [header] + [
        (r.name, "ready" if r.ready else "NOT READY", r.address, r.note) for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    return "\n".join(
        (
            "  "
            + "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
            + (f"  ({line[3]})" if line[3] else "")
        ).rstrip()
        for line in lines
    )


async def _first(work: asyncio.Future[Any], stop: asyncio.Event) -> bool:
    """Waits for ``work`` or ``stop``: ``True`` if the work finished first, else it is cancelled."""
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([work, stopped], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if work.done():
        return True
    work.cancel()
    return False


async def _up(settings: UpSettings, *, check: bool) -> int:
    color = sys.stdout.isatty() or os.environ.get("FORCE_COLOR", "") not in ("", "0")
    stack = Stack(settings, sys.stdout, color=color)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        try:
            await stack.start()
        except (PortInUse, ModelMissing) as exc:
            print(f"Troika did not start: {exc}", file=sys.stderr)  # noqa: T201
            return EXIT_NOT_READY
        ready = asyncio.create_task(stack.wait_ready(settings.ready_timeout_s))
        if not await _first(ready, stop):
            return 0
        try:
            rows = ready.result()
        except NotReady as exc:
            print(f"\nTroika did not start: {exc}\n\n{_table(exc.components)}", file=sys.stderr)  # noqa: T201
            return EXIT_NOT_READY
        print(f"\nTroika is ready.\n\n{_table(rows)}\n", flush=True)  # noqa: T201
        if stack.local_model is not None:
            notice = NOTICE.format(name=model_name(stack.local_model))
            print(f"Note: {notice}\n", flush=True)  # noqa: T201
        if check:
            return 0
        if settings.web:
            open_line = f"Open {stack.open_url} in your browser."
            print(f"\x1b[1m{open_line}\x1b[0m" if color else open_line)  # noqa: T201
        print(f"API: {stack.gateway_url}   (Ctrl+C stops everything)\n", flush=True)  # noqa: T201
        assert stack.supervisor is not None  # noqa: S101 - started above
        failed = stack.supervisor.failed
        if await _first(failed, stop):
            print(f"\nTroika is stopping: {failed.result()}", file=sys.stderr)  # noqa: T201
            return EXIT_NOT_READY
        return 0
    finally:
        print("Stopping…", flush=True)  # noqa: T201
        await stack.stop()
        print("Stopped.", flush=True)  # noqa: T201


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``troika`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "task":
        if not args.objective and not args.resume:
            parser.error("say what you want done, or --resume a task")
        for path in args.files:
            if not path.is_file():
                parser.error(f"{path} is not a file")
        if args.resume and (args.run_at or args.cron):
            parser.error("--at and --cron make a new task; they do not go with --resume")
        schedule: dict[str, str] = {}
        if args.run_at or args.cron:
            schedule = {"timezone": args.timezone or local_zone()}
            schedule["run_at" if args.run_at else "cron"] = args.run_at or args.cron
        api = args.api or os.environ.get("TROIKA_API_URL") or "http://127.0.0.1:8000"
        logging.getLogger("httpx").setLevel(logging.WARNING)
        raise SystemExit(
            asyncio.run(
                run_task(
                    api, args.objective, files=args.files, resume=args.resume, schedule=schedule
                )
            )
        )
    if args.command == "devices":
        if args.action == "remove" and not args.device_id:
            parser.error("say which PC to remove: troika devices remove <id> (see list)")
        api = args.api or os.environ.get("TROIKA_API_URL") or "http://127.0.0.1:8000"
        logging.getLogger("httpx").setLevel(logging.WARNING)
        raise SystemExit(asyncio.run(run_devices(api, args.action, args.device_id)))
    if args.command == "up":
        overrides: dict[str, Any] = {
            key: value
            for key in (
                "data_dir",
                "gateway_port",
                "web_port",
                "web",
                "agent_replicas",
                "ready_timeout_s",
            )
            if (value := getattr(args, key)) is not None
        }
        settings = UpSettings(**overrides)
        configure_logging(service="troika", level=settings.log_level, fmt=settings.log_format)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness poll is noise
        raise SystemExit(asyncio.run(_up(settings, check=args.check)))


if __name__ == "__main__":
    main()
