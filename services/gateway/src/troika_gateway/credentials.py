"""A person's credentials for tools that act as them: ``/credentials/smtp``.

Secrets are write-only: the API shows the server, port and sender, and whether a password is
set, never the password. They are stored encrypted (:mod:`troika_shared.vault`) and leave the
gateway only sealed into an approved call that needs them.
"""

from __future__ import annotations

# Litestar reads handler annotations at run time: their types are real imports.
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from litestar import Controller, Request, delete, get, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody
from msgspec import Meta, Struct
from sqlalchemy import delete as delete_rows
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from troika_gateway.auth.middleware import Principal
from troika_gateway.auth.schemas import Email
from troika_gateway.db.models import Credential
from troika_gateway.errors import InvalidInput, NotFound
from troika_gateway.openapi import BEARER
from troika_shared.vault import VaultError, open_secret, seal_secret

if TYPE_CHECKING:
    from troika_gateway.settings import GatewaySettings

__all__ = ["CredentialController", "CredentialView", "SmtpSettings", "load_secrets"]

SMTP = "smtp"

Host = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=253,
        pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$|^[0-9A-Fa-f:]+$",
        description="The mail server's name or address.",
        examples=["smtp.example.com"],
    ),
]


class SmtpSettings(Struct, forbid_unknown_fields=True, kw_only=True):
    """The person's outgoing mail server, for ``send_email``.

    Attributes:
        security: ``starttls`` (port 587, upgrade to TLS), ``tls`` (port 465, TLS from the
            start) or ``none`` (plain; only for a server on a trusted network).
        password: Write-only. Left out: the stored one is kept; ``""``: none.
    """

    host: Host
    from_address: Email
    port: Annotated[int, Meta(ge=1, le=65535)] = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: Annotated[str, Meta(max_length=320)] = ""
    password: Annotated[str, Meta(max_length=1024)] | None = None
    from_name: Annotated[str, Meta(max_length=200, pattern=r"^[^\r\n]*$")] = ""


class CredentialView(Struct, kw_only=True):
    """Stored credentials as the API shows them: no secret, only whether one is set."""

    kind: str
    settings: dict[str, Any]
    password_set: bool
    updated_at: datetime


def _context(user_id: str, kind: str) -> str:
    return f"{user_id}\n{kind}"


def _view(row: Credential) -> CredentialView:
    shown = dict(row.shown)
    password_set = bool(shown.pop("password_set", False))
    return CredentialView(
        kind=row.kind, settings=shown, password_set=password_set, updated_at=row.updated_at
    )


async def _row(db: AsyncSession, user_id: str, kind: str) -> Credential | None:
    return await db.scalar(
        select(Credential).where(Credential.user_id == user_id, Credential.kind == kind)
    )


async def load_secrets(
    db: AsyncSession, settings: GatewaySettings, user_id: str, kind: str
) -> dict[str, Any] | None:
    """A person's credentials of one kind, opened; ``None`` when there are none (or they were
    stored under another secret key and no longer open)."""
    row = await _row(db, user_id, kind)
    if row is None:
        return None
    try:
        return open_secret(settings.sealing_key(), row.sealed, _context(user_id, kind))
    except VaultError:
        return None


_SERVER_FIELDS = ("host", "port", "security", "username")


def _kept_password(kept: dict[str, Any] | None, data: SmtpSettings) -> str:
    """The stored password, kept only for the same server and account.

    Raises:
        InvalidInput: The server or account changed: the password must come again (else a
            stolen session could send the stored one to a server of its choosing).
    """
    if not kept or not kept.get("password"):
        return ""
    changed = [name for name in _SERVER_FIELDS if kept.get(name) != getattr(data, name)]
    if changed:
        message = "enter the password again when the server or account changes"
        raise InvalidInput(message, [{"field": "password", "message": message}])
    return str(kept["password"])


def _require_tls_for(password: str, data: SmtpSettings) -> None:
    """A password is sent only over TLS, except to a mail relay on this machine.

    Raises:
        InvalidInput: A password with ``security: none`` for a server elsewhere.
    """
    local = data.host in ("localhost", "127.0.0.1", "::1")
    if password and data.security == "none" and not local:
        message = "a password is sent only over TLS: use security 'starttls' or 'tls'"
        raise InvalidInput(message, [{"field": "security", "message": message}])


class CredentialController(Controller):
    """The caller's credentials for tools that act in their name."""

    path = "/credentials"
    tags = ["credentials"]  # noqa: RUF012 - Litestar reads it as a class attribute
    security = BEARER

    @get("/")
    async def list_credentials(
        self, request: Request[Principal, Any, State], db: NamedDependency[AsyncSession]
    ) -> list[CredentialView]:
        """Every kind of credentials the caller has stored (secrets never shown)."""
        rows = await db.scalars(
            select(Credential)
            .where(Credential.user_id == request.user.user_id)
            .order_by(Credential.kind)
        )
        return [_view(row) for row in rows]

    @get("/smtp")
    async def show_smtp(
        self, request: Request[Principal, Any, State], db: NamedDependency[AsyncSession]
    ) -> CredentialView:
        """The caller's mail server settings (the password never shown)."""
        row = await _row(db, request.user.user_id, SMTP)
        if row is None:
            raise NotFound("SMTP settings")
        return _view(row)

    @put("/smtp", request_max_body_size=16 * 1024)
    async def set_smtp(
        self,
        data: JSONBody[SmtpSettings],
        request: Request[Principal, Any, State],
        db: NamedDependency[AsyncSession],
        state: State,
    ) -> CredentialView:
        """Stores the caller's mail server settings, the password encrypted; leaving the
        password out keeps the stored one."""
        user_id = request.user.user_id
        settings: GatewaySettings = state.settings
        for attempt in range(2):
            row = await _row(db, user_id, SMTP)
            password = data.password
            if password is None:
                kept = await load_secrets(db, settings, user_id, SMTP) if row else None
                password = _kept_password(kept, data)
            _require_tls_for(password, data)
            secrets = {
                "host": data.host,
                "port": data.port,
                "security": data.security,
                "username": data.username,
                "password": password,
                "from_address": data.from_address,
                "from_name": data.from_name,
            }
            shown = {k: v for k, v in secrets.items() if k != "password"}
            shown["password_set"] = bool(password)
            sealed = seal_secret(settings.sealing_key(), secrets, _context(user_id, SMTP))
            if row is None:
                row = Credential(user_id=user_id, kind=SMTP, sealed=sealed, shown=shown)
                db.add(row)
            else:
                row.sealed, row.shown = sealed, shown
            try:
                await db.commit()
            except IntegrityError:  # a concurrent first save: apply this one over it
                await db.rollback()
                if attempt:
                    raise
                continue
            await db.refresh(row)
            return _view(row)
        raise AssertionError("unreachable")  # pragma: no cover

    @delete("/smtp", status_code=204)
    async def delete_smtp(
        self, request: Request[Principal, Any, State], db: NamedDependency[AsyncSession]
    ) -> None:
        """Forgets the caller's mail server settings (nothing can be sent until set again)."""
        await db.execute(
            delete_rows(Credential).where(
                Credential.user_id == request.user.user_id, Credential.kind == SMTP
            )
        )
        await db.commit()
