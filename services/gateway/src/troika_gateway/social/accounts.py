"""People's connected social accounts: stored, chosen for a post, renewed before they expire.

Tokens are sealed at rest (:mod:`troika_shared.vault`, bound to the owner, platform and
account) and leave the gateway only sealed into an approved post's call, with the platform's
address and API version. An image of the task's folder that Instagram must fetch gets a signed
link that works for an hour, for that file alone.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from troika_gateway.db.models import SocialAccount
from troika_gateway.errors import Conflict, InvalidInput, Upstream
from troika_gateway.social.platforms import (
    PlatformRefused,
    Tokens,
    endpoints,
    identify,
    oauth_client,
    refresh,
)
from troika_shared.social import PLATFORMS, is_address
from troika_shared.vault import VaultError, open_secret, seal_secret

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from troika_gateway.settings import GatewaySettings
    from troika_shared.catalogue import ToolDefinition

__all__ = [
    "call_account",
    "connect",
    "media_link",
    "open_media_link",
    "ready_account",
    "renew",
    "shown_name",
]

log = structlog.get_logger("troika.gateway.social")

_LINK_TTL_S = 3600


def _context(user_id: str, platform: str, account_id: str) -> str:
    return f"{user_id}\nsocial\n{platform}\n{account_id}"


def _seal(settings: GatewaySettings, row: SocialAccount, tokens: Tokens) -> None:
    secrets = {"access_token": tokens.access_token, "refresh_token": tokens.refresh_token}
    row.sealed = seal_secret(settings.sealing_key(), secrets,
                             _context(row.user_id, row.platform, row.account_id))  # fmt: skip
    row.expires_at = (
        datetime.fromtimestamp(tokens.expires_at, UTC) if tokens.expires_at is not None else None
    )
    row.renewable = row.platform == "instagram" or bool(
        tokens.refresh_token and oauth_client(settings, row.platform)
    )
    row.problem = ""


def _open(settings: GatewaySettings, row: SocialAccount) -> dict[str, Any] | None:
    try:
        return open_secret(settings.sealing_key(), row.sealed,
                           _context(row.user_id, row.platform, row.account_id))  # fmt: skip
    except VaultError:
        return None


async def connect(
    db: AsyncSession, settings: GatewaySettings, user_id: str, platform: str, tokens: Tokens
) -> SocialAccount:
    """Stores the account the tokens belong to (the platform is asked whose they are); the
    same account connected again gets the new tokens.

    Raises:
        InvalidInput: The platform did not accept the token.
        Upstream: The platform could not be reached.
    """
    try:
        identity = await identify(settings, platform, tokens.access_token)
    except PlatformRefused as exc:
        message = str(exc)
        raise InvalidInput(message, [{"field": "access_token", "message": message}]) from None
    except httpx.HTTPError as exc:
        raise Upstream(f"{PLATFORMS[platform].label} could not be reached: {exc}") from None
    for attempt in range(2):
        row = await db.scalar(select(SocialAccount).where(
            SocialAccount.user_id == user_id, SocialAccount.platform == platform,
            SocialAccount.account_id == identity.account_id,
        ))  # fmt: skip
        if row is None:
            row = SocialAccount(user_id=user_id, platform=platform,
                                account_id=identity.account_id)  # fmt: skip
            db.add(row)
        row.name, row.username = identity.name[:200], identity.username[:200]
        _seal(settings, row, tokens)
        try:
            await db.commit()
        except IntegrityError:  # connected twice at once: the later one's tokens win
            await db.rollback()
            if attempt:
                raise
            continue
        await db.refresh(row)
        log.info("social.connected", platform=platform, account=row.id)
        return row
    raise AssertionError("unreachable")  # pragma: no cover


def _matches(row: SocialAccount, wanted: str) -> bool:
    wanted = wanted.strip().lstrip("@").casefold()
    return wanted in {row.username.casefold(), row.name.casefold(), row.account_id.casefold()}


def shown_name(row: SocialAccount) -> str:
    """How the account is named to the person and the agent (``@handle`` or its name)."""
    return f"@{row.username}" if row.username else row.name


async def _choose(
    db: AsyncSession, user_id: str, platform: str, wanted: str | None
) -> SocialAccount:
    """The person's account a post goes out from.

    Raises:
        Conflict: They have no account on the platform.
        InvalidInput: None of theirs is the one named, or they have several and none is named.
    """
    label = PLATFORMS[platform].label
    rows = list(await db.scalars(
        select(SocialAccount).where(SocialAccount.user_id == user_id,
                                    SocialAccount.platform == platform)
        .order_by(SocialAccount.created_at)
    ))  # fmt: skip
    if not rows:
        raise Conflict(
            f"no {label} account is connected: connect one in your profile (POST "
            "/social/accounts) and approve again"
        )
    names = ", ".join(shown_name(row) for row in rows)
    if wanted and wanted.strip():
        found = [row for row in rows if _matches(row, wanted)]
        if not found:
            message = f"{wanted!r} is not one of your {label} accounts ({names})"
            raise InvalidInput(message, [{"field": "values.account", "message": message}])
        return found[0]
    if len(rows) > 1:
        message = f"choose which {label} account posts: {names}"
        raise InvalidInput(message, [{"field": "values.account", "message": message}])
    return rows[0]


async def ready_account(
    db: AsyncSession,
    settings: GatewaySettings,
    user_id: str,
    definition: ToolDefinition | None,
    arguments: dict[str, Any],
) -> None:
    """Before a post is approved: the account it goes out from exists, and its token is
    renewed (and the new one stored) if it expires soon.

    Raises:
        Conflict: No account on that platform, or it must be connected again.
        InvalidInput: The named account is not theirs, or they must choose one.
        Upstream: The platform could not be reached to renew the token.
    """
    if definition is None or definition.credentials not in PLATFORMS:
        return
    platform = str(definition.credentials)
    row = await _choose(db, user_id, platform, arguments.get("account"))
    soon = datetime.now(UTC) + timedelta(seconds=settings.social_refresh_margin_s)
    if row.expires_at is None or row.expires_at > soon:
        return
    label, who = PLATFORMS[platform].label, shown_name(row)
    if not row.renewable:
        if row.expires_at <= datetime.now(UTC):
            raise Conflict(f"the token of your {label} account {who} has expired: connect the "
                           "account again in your profile, then approve")  # fmt: skip
        return
    try:
        await renew(db, settings, row.id, before=soon)
    except PlatformRefused as exc:
        raise Conflict(f"your {label} account {who} must be connected again ({exc})") from None
    except httpx.HTTPError as exc:
        raise Upstream(f"{label} could not be reached to renew the token of {who}: {exc}") from None


async def renew(
    db: AsyncSession, settings: GatewaySettings, account_id: str, *, before: datetime
) -> bool:
    """Renews an account's token if it still expires before ``before`` (another process may
    have just renewed it: the row is locked and read again first), and stores the new one.

    Returns:
        Whether it was renewed.

    Raises:
        PlatformRefused: The platform refused; the account is marked to be connected again.
        httpx.HTTPError: The platform could not be reached (nothing changes).
    """
    row = await db.scalar(
        select(SocialAccount).where(SocialAccount.id == account_id)
        .with_for_update().execution_options(populate_existing=True)
    )  # fmt: skip
    if row is None or row.expires_at is None or row.expires_at > before:
        await db.commit()  # nothing to do: lets the lock go (and keeps the caller's rows)
        return False
    secrets = _open(settings, row) or {}
    try:
        tokens = await refresh(settings, row.platform, secrets)
    except PlatformRefused as exc:
        row.problem = f"{exc}: connect the account again"[:500]
        await db.commit()
        log.warning("social.renewal_refused", platform=row.platform, account=row.id)
        raise
    except httpx.HTTPError:
        await db.commit()  # nothing changed
        raise
    _seal(settings, row, tokens)
    await db.commit()
    log.info("social.renewed", platform=row.platform, account=row.id)
    return True


async def call_account(
    db: AsyncSession,
    settings: GatewaySettings,
    user_id: str,
    platform: str,
    *,
    arguments: dict[str, Any],
    task_id: str,
) -> dict[str, Any] | None:
    """The account an approved post goes out from, as the executor needs it: its token, who
    it is, the platform's address and version, and signed links to the task's images where the
    platform fetches them itself; ``None`` when there is no such account (any more)."""
    try:
        row = await _choose(db, user_id, platform, arguments.get("account"))
    except (Conflict, InvalidInput):
        return None
    secrets = _open(settings, row)
    if secrets is None:
        return None
    account: dict[str, Any] = {
        **endpoints(settings, platform),
        "access_token": secrets["access_token"],
        "account_id": row.account_id,
        "name": row.name,
        "username": row.username,
    }
    if platform == "instagram" and settings.public_url:
        images = [str(image) for image in arguments.get("images") or []]
        account["media_links"] = {
            image: media_link(settings, task_id, image) for image in images if not is_address(image)
        }
    return account


def media_link(settings: GatewaySettings, task_id: str, path: str) -> str:
    """A link to one file of the task's folder that works for an hour, without signing in."""
    until = int(time.time()) + _LINK_TTL_S
    token = seal_secret(settings.sealing_key(), {"task": task_id, "path": path, "until": until},
                        "social-media")  # fmt: skip
    return f"{settings.public_url.rstrip('/')}/social/media/{token}"


def open_media_link(settings: GatewaySettings, token: str) -> tuple[str, str] | None:
    """The task and file a link names, while it works."""
    try:
        found = open_secret(settings.sealing_key(), token, "social-media")
    except VaultError:
        return None
    if int(found.get("until", 0)) < time.time():
        return None
    return str(found["task"]), str(found["path"])
