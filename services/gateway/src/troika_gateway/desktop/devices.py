"""The person's PCs: one-time pairing codes, pairing, the list, and revoking.

A person asks for a code (the web app's profile or ``troika devices pair-code``); on their PC,
``troika-desktop pair <gateway> <code>`` exchanges it for the PC's own credential and the key
that checks the actions sealed for it. Codes and credentials are kept hashed; a code works once,
for ``pairing_code_ttl_s``. Revoking a PC refuses its credential at once, closes its connection
wherever it is held, and fails the actions that were waiting for it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

# Litestar reads handler annotations at run time: their types are real imports.
from typing import TYPE_CHECKING, Annotated, Any

from litestar import Controller, Request, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from msgspec import Meta, Struct
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from troika_gateway.auth.middleware import Principal
from troika_gateway.db.models import Device, PairingCode
from troika_gateway.desktop.relay import fail_waiting, send_control
from troika_gateway.errors import NotFound
from troika_gateway.openapi import BEARER
from troika_shared.desktop import device_key

if TYPE_CHECKING:
    from troika_gateway.settings import GatewaySettings

__all__ = ["DeviceController", "PairedDevice", "hash_secret", "online"]

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud or typed by hand
_CODE_LENGTH = 8
_SEEN_WITHIN = timedelta(seconds=90)  # a connected PC is seen every 30 seconds


def hash_secret(value: str) -> str:
    """The stored form of a code or a device credential."""
    return hashlib.sha256(value.encode()).hexdigest()


def _normalised(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def online(device: Device, now: datetime | None = None) -> bool:
    """Whether the PC holds a connection now (seen lately by the gateway holding it)."""
    now = now or datetime.now(UTC)
    return bool(
        device.connected and device.last_seen_at and now - device.last_seen_at < _SEEN_WITHIN
    )


DeviceName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="What the person calls this PC.",
        examples=["laptop"],
    ),
]


class PairingCodeView(Struct, kw_only=True):
    """A one-time code to type on the PC (``troika-desktop pair <gateway> <code>``)."""

    code: str
    expires_at: datetime


class Pairing(Struct, forbid_unknown_fields=True, kw_only=True):
    """What the PC sends to pair: the code, and its name and platform."""

    code: Annotated[str, Meta(min_length=4, max_length=32)]
    name: DeviceName
    platform: Annotated[str, Meta(max_length=64)] = ""


class PairedDevice(Struct, kw_only=True):
    """What the PC keeps: its id and name, its credential and the key that checks its actions
    (both shown this once)."""

    device_id: str
    name: str
    token: str
    seal_key: str


class DeviceView(Struct, kw_only=True):
    """A paired PC as the person sees it."""

    id: str
    name: str
    platform: str
    created_at: datetime
    last_seen_at: datetime | None
    online: bool


def _view(row: Device, now: datetime) -> DeviceView:
    return DeviceView(
        id=row.id,
        name=row.name,
        platform=row.platform,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        online=online(row, now),
    )


async def _free_name(db: AsyncSession, user_id: str, wanted: str) -> str:
    """``wanted``, or ``wanted (2)``… when another of the person's PCs has that name."""
    taken = set(
        await db.scalars(
            select(Device.name).where(Device.user_id == user_id, Device.revoked_at.is_(None))
        )
    )
    name, n = wanted, 1
    while name in taken:
        n += 1
        suffix = f" ({n})"
        name = wanted[: 64 - len(suffix)] + suffix
    return name


class DeviceController(Controller):
    """The caller's paired PCs."""

    path = "/devices"
    tags = ["devices"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/pairing-codes", status_code=201, security=BEARER)
    async def new_code(
        self,
        request: Request[Principal, Any, State],
        db: NamedDependency[AsyncSession],
        state: State,
    ) -> PairingCodeView:
        """A one-time code that pairs a PC with the caller's account; it works once, for a
        few minutes."""
        settings: GatewaySettings = state.settings
        code = "".join(secrets.choice(_ALPHABET) for _ in range(_CODE_LENGTH))
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=settings.pairing_code_ttl_s)
        db.add(
            PairingCode(
                user_id=request.user.user_id,
                code_hash=hash_secret(code),
                created_at=now,
                expires_at=expires,
            )
        )
        await db.commit()
        return PairingCodeView(code=f"{code[:4]}-{code[4:]}", expires_at=expires)

    @post("/pair", status_code=201, request_max_body_size=4096)
    async def pair(
        self,
        data: JSONBody[Pairing],
        request: Request[Any, Any, State],
        db: NamedDependency[AsyncSession],
        state: State,
    ) -> PairedDevice:
        """Pairs a PC with the account whose one-time code it brings (no sign-in: the code is
        the proof). The credential and key in the answer are shown this once."""
        settings: GatewaySettings = state.settings
        address = request.client.host if request.client else "unknown"
        limiter = state.login_limiter
        await limiter.attempt(f"pairing:{address}", address, what="pairing")
        now = datetime.now(UTC)
        claimed = await db.execute(
            update(PairingCode)
            .where(
                PairingCode.code_hash == hash_secret(_normalised(data.code)),
                PairingCode.used_at.is_(None),
                PairingCode.expires_at > now,
            )
            .values(used_at=now)
            .returning(PairingCode.user_id)
        )
        user_id = claimed.scalar_one_or_none()
        if user_id is None:
            await db.rollback()
            await limiter.failed(f"pairing:{address}", address)
            raise NotFound("pairing code (it is wrong, used or expired: ask for a new one)")
        token = secrets.token_urlsafe(32)
        device = Device(
            user_id=user_id,
            name=await _free_name(db, user_id, data.name.strip()),
            platform=data.platform,
            token_hash=hash_secret(token),
            created_at=now,
        )
        db.add(device)
        await db.commit()
        approval = settings.seal_key()
        assert approval is not None  # noqa: S101 - the gateway does not start without a secret
        return PairedDevice(
            device_id=device.id,
            name=device.name,
            token=token,
            seal_key=device_key(approval, device.id).hex(),
        )

    @get("/", security=BEARER)
    async def list_devices(
        self, request: Request[Principal, Any, State], db: NamedDependency[AsyncSession]
    ) -> list[DeviceView]:
        """The caller's paired PCs, and whether each is connected now."""
        rows = await db.scalars(
            select(Device)
            .where(Device.user_id == request.user.user_id, Device.revoked_at.is_(None))
            .order_by(Device.created_at)
        )
        now = datetime.now(UTC)
        return [_view(row, now) for row in rows]

    @delete("/{device_id:str}", status_code=204, security=BEARER)
    async def revoke(
        self,
        device_id: FromPath[str],
        request: Request[Principal, Any, State],
        db: NamedDependency[AsyncSession],
        state: State,
    ) -> None:
        """Revokes a PC: its credential is refused from now on, its connection is closed, and
        the actions waiting for it fail (their tasks hear why)."""
        user_id = request.user.user_id
        revoked = await db.execute(
            update(Device)
            .where(Device.id == device_id, Device.user_id == user_id, Device.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC), connected=False)
            .returning(Device.name)
        )
        name = revoked.scalar_one_or_none()
        if name is None:
            raise NotFound("device")
        await db.commit()
        bus = state.bus
        await send_control(bus, user_id, device_id, "revoked")
        await fail_waiting(
            bus, user_id, device_id, f"your PC {name!r} was removed from your account"
        )
