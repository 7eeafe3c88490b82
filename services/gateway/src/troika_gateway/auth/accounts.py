"""Accounts and sessions: registration, sign-in, refresh, sign-out, profile and password."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from msgspec import UNSET
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from troika_gateway.auth.passwords import weaknesses
from troika_gateway.auth.schemas import Profile, Tokens
from troika_gateway.auth.tokens import hash_refresh_token, new_refresh_token
from troika_gateway.db.models import RetiredRefreshToken, Session, User
from troika_gateway.errors import Conflict, InvalidInput, NotFound, Unauthorized

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from troika_gateway.auth.passwords import Passwords
    from troika_gateway.auth.ratelimit import LoginLimiter
    from troika_gateway.auth.schemas import (
        Login,
        PasswordChange,
        ProfileUpdate,
        Registration,
    )
    from troika_gateway.auth.tokens import TokenIssuer

__all__ = ["Accounts", "Client", "profile_of"]

log = structlog.get_logger("troika.gateway.auth")

REUSE_LEEWAY_S = 5.0
"""How long after its rotation a refresh token shown again is taken for a race, not a copy."""


_SETTINGS = (
    "review_plans",
    "daily_budget_usd",
    "monthly_budget_usd",
    "daily_budget_tokens",
    "monthly_budget_tokens",
)
"""The profile's settings that are stored as they are given."""


@dataclass(frozen=True, slots=True)
class Client:
    """Where a request came from, recorded on its session."""

    address: str
    user_agent: str


def profile_of(user: User) -> Profile:
    """The profile an owner sees."""
    photo = (
        f"/auth/photo?v={int(user.photo_updated_at.timestamp())}" if user.photo_updated_at else None
    )
    return Profile(
        id=user.id,
        email=user.email,
        username=user.username,
        display_name=user.display_name,
        photo_url=photo,
        created_at=user.created_at,
        review_plans=user.review_plans,
        daily_budget_usd=user.daily_budget_usd,
        monthly_budget_usd=user.monthly_budget_usd,
        daily_budget_tokens=user.daily_budget_tokens,
        monthly_budget_tokens=user.monthly_budget_tokens,
    )


def _password_problems(password: str, username: str, email: str, field: str) -> None:
    problems = weaknesses(password, username=username, email=email)
    if problems:
        raise InvalidInput(
            "the password is too weak: " + "; ".join(problems),
            [{"field": field, "message": problem} for problem in problems],
        )


class Accounts:
    """Account operations on one database session.

    Args:
        db: The request's database session.
        passwords: Hashing.
        tokens: Access-token signing.
        refresh_ttl_s: A session's lifetime from its last refresh.
        limiter: The limits on password attempts.
    """

    def __init__(
        self,
        db: AsyncSession,
        passwords: Passwords,
        tokens: TokenIssuer,
        refresh_ttl_s: int,
        limiter: LoginLimiter,
    ) -> None:
        self.db = db
        self.passwords = passwords
        self.tokens = tokens
        self.refresh_ttl_s = refresh_ttl_s
        self.limiter = limiter

    async def user(self, user_id: str) -> User:
        """The caller's account.

        Raises:
            NotFound: It was deleted.
        """
        user = await self.db.get(User, user_id)
        if user is None:
            raise NotFound("account")
        return user

    async def _taken(self, *, email: str | None = None, username: str | None = None) -> str | None:
        if email is not None and await self.db.scalar(select(User.id).where(User.email == email)):
            return "an account with this e-mail address already exists"
        if username is not None and await self.db.scalar(
            select(User.id).where(func.lower(User.username) == username.lower())
        ):
            return "this username is taken"
        return None

    async def register(self, data: Registration, client: Client) -> User:
        """Creates an account.

        Raises:
            RateLimited: Too many attempts from the address (sign-ins and sign-ups together).
            InvalidInput: The password is too weak.
            Conflict: The e-mail address or username is taken.
        """
        await self.limiter.from_address(client.address, what="sign-up")
        email = data.email.strip().lower()
        _password_problems(data.password, data.username, email, "password")
        if taken := await self._taken(email=email, username=data.username):
            raise Conflict(taken)
        user = User(
            email=email,
            username=data.username,
            display_name=data.display_name.strip() or data.username,
            password_hash=await self.passwords.hash(data.password),
        )
        self.db.add(user)
        try:
            await self.db.commit()
        except IntegrityError as exc:  # a concurrent registration took it first
            await self.db.rollback()
            raise Conflict(
                "an account with this e-mail address or username already exists"
            ) from exc
        return user

    async def _known_address(self, user_id: str, address: str) -> bool:
        """Whether the account signed in from ``address`` within a session's lifetime."""
        since = datetime.now(UTC) - timedelta(seconds=self.refresh_ttl_s)
        found = await self.db.scalar(
            select(Session.id)
            .where(
                Session.user_id == user_id,
                Session.client_address == address[:64],
                Session.created_at > since,
            )
            .limit(1)
        )
        return found is not None

    async def _check_password(
        self, user: User | None, account: str, password: str, client: Client, what: str
    ) -> bool:
        """Checks a password within the attempt limits (see :mod:`.ratelimit`).

        Raises:
            RateLimited: Too many attempts on the account or from the address.
        """
        known = user is not None and await self._known_address(user.id, client.address)
        await self.limiter.attempt(account, client.address, known=known, what=what)
        if not await self.passwords.verify(user.password_hash if user else None, password):
            await self.limiter.failed(account, client.address)
            return False
        await self.limiter.succeeded(account, client.address)
        return True

    async def login(self, data: Login, client: Client) -> Tokens:
        """Signs in and opens a session.

        Raises:
            RateLimited: Too many attempts on the account or from the address.
            Unauthorized: Unknown login or wrong password (indistinguishable).
        """
        login = data.login.strip()
        user = await self.db.scalar(
            select(User).where(
                or_(User.email == login.lower(), func.lower(User.username) == login.lower())
            )
        )
        # The username and the e-mail address count as one account; a name that is none counts
        # on its own, so trying one looks the same as trying an account.
        account = user.id if user is not None else f"name:{login.lower()}"
        if not await self._check_password(user, account, data.password, client, "sign-in"):
            raise Unauthorized("the e-mail address, username or password is not right")
        assert user is not None  # noqa: S101 - a password checks out only for an account
        if self.passwords.needs_rehash(user.password_hash):
            user.password_hash = await self.passwords.hash(data.password)
        return await self._open_session(user.id, client)

    async def _open_session(self, user_id: str, client: Client) -> Tokens:
        refresh = new_refresh_token()
        now = datetime.now(UTC)
        session = Session(
            user_id=user_id,
            refresh_token_hash=hash_refresh_token(refresh),
            expires_at=now + timedelta(seconds=self.refresh_ttl_s),
            client_address=client.address[:64],
            user_agent=client.user_agent[:255],
        )
        self.db.add(session)
        await self.db.commit()
        return self._tokens(user_id, session.id, refresh)

    def _tokens(self, user_id: str, session_id: str, refresh: str) -> Tokens:
        return Tokens(
            access_token=self.tokens.issue(user_id, session_id),
            refresh_token=refresh,
            expires_in=self.tokens.ttl_s,
            refresh_expires_in=self.refresh_ttl_s,
        )

    async def refresh(self, refresh_token: str) -> Tokens:
        """Exchanges a refresh token for new tokens; the old refresh token stops working.

        A token that was rotated away already, shown again, was copied (or the copy was used
        first): the session ends, whoever holds which token, and both must sign in again. Within
        :data:`REUSE_LEEWAY_S` of its rotation it is only refused: one client that sent the same
        refresh twice at once (a double click, two requests racing) is not signed out for it.

        Raises:
            Unauthorized: The token is unknown, used already, revoked or expired.
        """
        now = datetime.now(UTC)
        new, old = new_refresh_token(), hash_refresh_token(refresh_token)
        # One statement, so two concurrent refreshes with the same token cannot both succeed.
        result = await self.db.execute(
            update(Session)
            .where(
                Session.refresh_token_hash == old,
                Session.revoked_at.is_(None),
                Session.expires_at > now,
            )
            .values(
                refresh_token_hash=hash_refresh_token(new),
                refreshed_at=now,
                expires_at=now + timedelta(seconds=self.refresh_ttl_s),
            )
            .returning(Session.id, Session.user_id)
        )
        row = result.one_or_none()
        if row is None:
            await self.db.rollback()
            await self._end_if_reused(old, now)
            raise Unauthorized("the refresh token is not valid; sign in again")
        kept_since = now - timedelta(seconds=self.refresh_ttl_s)
        retired = RetiredRefreshToken
        await self.db.execute(  # older ones would have expired anyway
            delete(retired).where(retired.session_id == row.id, retired.retired_at < kept_since)
        )
        self.db.add(RetiredRefreshToken(token_hash=old, session_id=row.id, retired_at=now))
        await self.db.commit()
        return self._tokens(row.user_id, row.id, new)

    async def _end_if_reused(self, token_hash: str, now: datetime) -> None:
        """Ends the session a rotated-away refresh token belonged to, if it is one."""
        retired = await self.db.get(RetiredRefreshToken, token_hash)
        if retired is None or now - retired.retired_at < timedelta(seconds=REUSE_LEEWAY_S):
            return
        ended = await self.db.execute(
            update(Session)
            .where(Session.id == retired.session_id, Session.revoked_at.is_(None))
            .values(revoked_at=now)
            .returning(Session.user_id)
        )
        user_id = ended.scalar_one_or_none()
        await self.db.commit()
        if user_id is not None:
            log.warning("auth.refresh_token_reused", user_id=user_id, session_id=retired.session_id)

    async def logout(self, session_id: str) -> None:
        """Ends a session: its refresh token and its access tokens stop working."""
        await self.db.execute(
            update(Session)
            .where(Session.id == session_id, Session.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        await self.db.commit()

    async def update_profile(self, user_id: str, data: ProfileUpdate, client: Client) -> User:
        """Changes e-mail, username, display name or whether new tasks' plans wait for review.

        Raises:
            RateLimited: Too many wrong passwords (the sign-in limits).
            Unauthorized: The e-mail changes and the current password is missing or wrong.
            Conflict: The new e-mail address or username is taken.
        """
        user = await self.user(user_id)
        email = data.email.strip().lower() if data.email is not UNSET else None
        if email is not None and email != user.email:
            password = data.current_password if data.current_password is not UNSET else ""
            if not password or not await self._check_password(
                user, user.id, password, client, "password check"
            ):
                raise Unauthorized("changing the e-mail address needs your current password")
            if taken := await self._taken(email=email):
                raise Conflict(taken)
            user.email = email
        if data.username is not UNSET and data.username.lower() != user.username.lower():
            if taken := await self._taken(username=data.username):
                raise Conflict(taken)
            user.username = data.username
        elif data.username is not UNSET:
            user.username = data.username
        if data.display_name is not UNSET:
            user.display_name = data.display_name.strip() or user.username
        for name in _SETTINGS:  # the person's choices: as given, where given
            if (value := getattr(data, name)) is not UNSET:
                setattr(user, name, value)
        try:
            await self.db.commit()
        except IntegrityError as exc:
            await self.db.rollback()
            raise Conflict("that e-mail address or username was just taken") from exc
        return user

    async def change_password(
        self, session_id: str, user_id: str, data: PasswordChange, client: Client
    ) -> None:
        """Sets a new password and signs out every other session.

        Raises:
            RateLimited: Too many wrong passwords (the sign-in limits).
            Unauthorized: The current password is wrong.
            InvalidInput: The new password is too weak.
        """
        user = await self.user(user_id)
        if not await self._check_password(
            user, user.id, data.current_password, client, "password check"
        ):
            raise Unauthorized("the current password is not right")
        _password_problems(data.new_password, user.username, user.email, "new_password")
        user.password_hash = await self.passwords.hash(data.new_password)
        await self.db.execute(
            update(Session)
            .where(
                Session.user_id == user_id,
                Session.id != session_id,
                Session.revoked_at.is_(None),
            )
            .values(revoked_at=datetime.now(UTC))
        )
        await self.db.commit()
