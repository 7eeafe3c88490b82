"""The worker's renewal of long-lived tokens before they lapse.

A token that lasts days or weeks (Instagram's and LinkedIn's last about 60 days) must be
renewed while it still works, even when nobody posts: each hour the worker renews those that
expire within a week. Short-lived ones (X's last two hours) are renewed when a post is
approved instead, with the refresh token, which outlives them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
import structlog
from sqlalchemy import select

from troika_gateway.db.models import SocialAccount
from troika_gateway.pipeline.sweeps import every
from troika_gateway.social.accounts import renew
from troika_gateway.social.platforms import PlatformRefused

if TYPE_CHECKING:
    import asyncio

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from troika_gateway.settings import GatewaySettings

__all__ = ["Renewals"]

log = structlog.get_logger("troika.gateway.social")

_LONG_LIVED = timedelta(days=1)


class Renewals:
    """Renews long-lived tokens that expire within ``social_renew_ahead_s``."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], settings: GatewaySettings
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings

    async def run(self, stop: asyncio.Event) -> None:
        """Sweeps until ``stop`` is set."""
        await every(self.settings.social_renew_sweep_s, self.sweep, stop, name="social_renewals")

    async def sweep(self) -> list[str]:
        """Renews what is due; returns the ids of the accounts renewed (one the platform refuses
        is marked to be connected again, one it does not answer for is tried next time)."""
        before = datetime.now(UTC) + timedelta(seconds=self.settings.social_renew_ahead_s)
        async with self.sessionmaker() as db:
            due = list(await db.scalars(
                select(SocialAccount).where(
                    SocialAccount.renewable, SocialAccount.problem == "",
                    SocialAccount.expires_at.is_not(None), SocialAccount.expires_at <= before,
                )
            ))  # fmt: skip
        renewed = []
        for row in due:
            assert row.expires_at is not None  # noqa: S101 - selected for having one
            if row.expires_at - row.updated_at < _LONG_LIVED:
                continue  # renewed when a post needs it
            async with self.sessionmaker() as db:
                try:
                    if await renew(db, self.settings, row.id, before=before):
                        renewed.append(row.id)
                except PlatformRefused:
                    pass  # marked on the account for the person
                except httpx.HTTPError as exc:
                    log.warning("social.renewal_postponed", account=row.id, error=str(exc))
        return renewed
