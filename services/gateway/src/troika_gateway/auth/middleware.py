"""Authentication of every HTTP request: ``Authorization: Bearer <access token>``.

Secure by default: every route needs a valid token except the few listed as public. A token is
valid when its signature and expiry check out *and* its session has not been revoked, so logging
out or changing the password ends access at once, not when the token expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from sqlalchemy import bindparam, select

from troika_gateway.db.models import Session, table_of
from troika_gateway.errors import Unauthorized

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from troika_gateway.auth.tokens import AccessClaims, TokenIssuer

__all__ = ["PUBLIC_PATHS", "BearerAuthMiddleware", "Principal", "authenticate"]

PUBLIC_PATHS = [
    "^/auth/register$",
    "^/auth/login$",
    "^/auth/refresh$",
    "^/health$",
    "^/ready$",
    "^/metrics$",
    "^/schema",
    "^/ws",  # the WebSockets authenticate with their first message
    "^/devices/pair$",  # a PC brings a one-time code instead of a sign-in
    "^/social/media/",  # a platform fetches a post's image by its signed link
]

# Built once, and only the two columns it needs: this runs for every request.
_SESSIONS = table_of(Session)
_LIVE = select(_SESSIONS.c.revoked_at, _SESSIONS.c.expires_at).where(
    _SESSIONS.c.id == bindparam("session_id"), _SESSIONS.c.user_id == bindparam("user_id")
)

_ON_ITS_OWN = {"isolation_level": "AUTOCOMMIT"}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the user and the session the token belongs to."""

    user_id: str
    session_id: str


async def authenticate(
    token: str, issuer: TokenIssuer, sessionmaker: async_sessionmaker[AsyncSession]
) -> tuple[Principal, AccessClaims]:
    """Verifies an access token and that its session is still live.

    Raises:
        Unauthorized: The token is invalid or expired, or its session was revoked.
    """
    claims = issuer.verify(token)
    async with sessionmaker() as db:
        if db.get_bind().dialect.name == "postgresql":
            # One statement needs no transaction around it: no BEGIN before, no ROLLBACK after.
            await db.connection(execution_options=_ON_ITS_OWN)
        found = await db.execute(
            _LIVE, {"session_id": claims.session_id, "user_id": claims.user_id}
        )
        session = found.one_or_none()
    if session is None or session.revoked_at is not None:
        raise Unauthorized("this session has ended; sign in again")
    if session.expires_at <= datetime.now(UTC):
        raise Unauthorized("this session has expired; sign in again")
    return Principal(claims.user_id, claims.session_id), claims


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    """Puts a :class:`Principal` on ``request.user`` or refuses the request with 401."""

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:  # type: ignore[type-arg]
        scheme, _, token = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("sign in and send the access token as 'Authorization: Bearer …'")
        state = connection.app.state
        principal, claims = await authenticate(token.strip(), state.tokens, state.sessionmaker)
        return AuthenticationResult(user=principal, auth=claims)
