"""The profile's "Your PCs": a one-time code to pair a PC with ``troika-desktop``, the paired PCs
and whether each is connected, and removing one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import reflex as rx

from troika_client import ApiError
from troika_frontend.components import badge, panel
from troika_frontend.session import SessionState, settings

__all__ = ["DevicesState", "devices_panel"]


@dataclass
class DeviceRow:
    """A paired PC."""

    id: str
    name: str
    platform: str
    online: bool
    seen: str


def _seen(value: object) -> str:
    if not value:
        return "never connected"
    moment = datetime.fromisoformat(str(value)).astimezone()
    return f"last seen {moment:%Y-%m-%d %H:%M}"


class DevicesState(SessionState):
    """The person's PCs."""

    devices: list[DeviceRow] = []  # noqa: RUF012 - Reflex state vars are declared on the class
    code: str = ""
    code_until: str = ""
    gateway_address: str = ""

    @rx.event
    async def load(self) -> Any:  # noqa: ANN401 - Reflex event specs
        """Reads the paired PCs."""
        if not self.access_token:
            return None
        try:
            await self._load()
        except ApiError as exc:
            return rx.toast.error(exc.message)
        return None

    async def _load(self) -> None:
        self.gateway_address = settings().gateway_url.rstrip("/")
        self.devices = [
            DeviceRow(
                id=str(d["id"]),
                name=str(d["name"]),
                platform=str(d.get("platform") or ""),
                online=bool(d.get("online")),
                seen=_seen(d.get("last_seen_at")),
            )
            for d in await self._api("GET", "/devices")
        ]

    @rx.event
    async def new_code(self) -> Any:  # noqa: ANN401
        """A one-time code for ``troika-desktop pair`` (shown until it expires or is used)."""
        try:
            made = await self._api("POST", "/devices/pairing-codes")
        except ApiError as exc:
            return rx.toast.error(exc.message)
        self.code = str(made["code"])
        self.code_until = f"{datetime.fromisoformat(made['expires_at']).astimezone():%H:%M}"
        self.gateway_address = settings().gateway_url.rstrip("/")
        return None

    @rx.event
    async def remove(self, device_id: str) -> Any:  # noqa: ANN401
        """Revokes a PC: it is cut off at once and gets no more actions."""
        try:
            await self._api("DELETE", f"/devices/{device_id}")
            await self._load()
        except ApiError as exc:
            return rx.toast.error(exc.message)
        return rx.toast.success("The PC is removed and cut off.")


def _device(row: DeviceRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(row.name, weight="medium"), class_name="device-name"),
        rx.table.cell(
            rx.cond(
                row.online,
                badge("connected", "green", class_name="device-state"),
                badge("offline", "gray", class_name="device-state"),
            )
        ),
        rx.table.cell(rx.text(row.platform + " · " + row.seen, size="1", color_scheme="gray")),
        rx.table.cell(
            rx.button(
                "Remove",
                size="1",
                variant="soft",
                color_scheme="red",
                class_name="remove-device",
                on_click=DevicesState.remove(row.id),
            )
        ),
    )


def devices_panel() -> rx.Component:
    """The panel on the profile page."""
    return panel(
        rx.heading("Your PCs (desktop tools)", size="4"),
        rx.text(
            "The desktop tools (screenshots, windows, mouse, typing) act on a PC of yours that "
            "runs troika-desktop, each action after your approval. Pair a PC with a one-time "
            "code; remove it here to cut it off at once.",
            size="2",
            color_scheme="gray",
        ),
        rx.cond(
            DevicesState.code != "",
            rx.vstack(
                rx.hstack(
                    rx.text("Code:", size="2"),
                    rx.code(DevicesState.code, size="4", id="pairing-code"),
                    rx.text("works once, until " + DevicesState.code_until, size="1"),
                    align="center",
                ),
                rx.text("On the PC, run:", size="2"),
                rx.code_block(
                    "troika-desktop pair "
                    + DevicesState.gateway_address
                    + " "
                    + DevicesState.code
                    + "\ntroika-desktop run",
                    language="bash",
                    width="100%",
                ),
                width="100%",
            ),
        ),
        rx.button("Pair a PC", id="pair-pc", on_click=DevicesState.new_code, width="fit-content"),
        rx.cond(
            DevicesState.devices.length() > 0,  # type: ignore[attr-defined]
            rx.table.root(
                rx.table.body(rx.foreach(DevicesState.devices, _device)),
                width="100%",
                size="1",
            ),
            rx.text("No PC is paired yet.", size="2", id="no-devices"),
        ),
        id="devices",
    )
