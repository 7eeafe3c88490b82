"""``troika devices``: the PCs paired with your account for the desktop tools.

troika devices pair-code    a one-time code for ``troika-desktop pair`` on the PC
troika devices list         your PCs, and which are connected now
troika devices remove ID    revoke a PC: it is cut off at once
"""

from __future__ import annotations

from datetime import datetime

from troika.client import open_session
from troika.task_cli import EXIT_FAILED, Terminal, sign_in
from troika_client import ApiError

__all__ = ["run_devices"]


async def run_devices(
    api: str, action: str, device_id: str | None = None, terminal: Terminal | None = None
) -> int:
    """Carries out one ``troika devices`` command; returns the exit status."""
    terminal = terminal or Terminal()
    session = open_session(api)
    try:
        await sign_in(session, terminal)
        if action == "pair-code":
            made = await session.post("/devices/pairing-codes")
            expires = datetime.fromisoformat(made["expires_at"]).astimezone()
            terminal.say(f"Pairing code: {made['code']}  (works once, until {expires:%H:%M})")
            terminal.say("On the PC, run:")
            terminal.say(f"  troika-desktop pair {api} {made['code']}")
            terminal.say("  troika-desktop run")
        elif action == "list":
            devices = await session.get("/devices")
            if not devices:
                terminal.say("No PC is paired: troika devices pair-code")
            for device in devices:
                state = "connected" if device["online"] else "offline"
                terminal.say(f"{device['id']}  {device['name']!r}  {state}  {device['platform']}")
        elif action == "remove" and device_id:
            await session.call("DELETE", f"/devices/{device_id}")
            terminal.say("Removed: that PC is cut off and gets no more actions.")
    except ApiError as exc:
        terminal.say(f"The gateway refused: {exc.detail}")
        return EXIT_FAILED
    else:
        return 0
    finally:
        await session.close()
