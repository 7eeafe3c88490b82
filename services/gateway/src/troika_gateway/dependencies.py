"""Per-request dependencies: a database session, and the services built on it."""

from __future__ import annotations

# Litestar reads the providers' annotations at run time, so their types are imported for real.
from collections.abc import AsyncIterator  # noqa: TC003
from typing import Any

from litestar.datastructures import State  # noqa: TC002
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: TC002

from troika_gateway.auth.accounts import Accounts

__all__ = ["dependencies"]


async def provide_db(state: State) -> AsyncIterator[AsyncSession]:
    """A session for the request; rolled back if the handler did not commit."""
    async with state.sessionmaker() as session:
        yield session


def provide_accounts(db: NamedDependency[AsyncSession], state: State) -> Accounts:
    """Account operations on the request's session."""
    return Accounts(
        db,
        state.passwords,
        state.tokens,
        state.settings.refresh_token_ttl_s,
        state.login_limiter,
    )


def dependencies() -> dict[str, Any]:
    """The app's dependencies."""
    return {
        "db": Provide(provide_db),
        "accounts": Provide(provide_accounts, sync_to_thread=False),
    }
