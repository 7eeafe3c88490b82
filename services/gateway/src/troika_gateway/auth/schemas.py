"""What the account endpoints take and return."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import UNSET, Meta, Struct, UnsetType

__all__ = [
    "Email",
    "Login",
    "PasswordChange",
    "Profile",
    "ProfileUpdate",
    "Refresh",
    "Registration",
    "Tokens",
    "Username",
]

Email = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="An e-mail address.",
        examples=["ada@example.com"],
    ),
]
Username = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=32,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="3-32 letters, digits, '_', '.' or '-', starting with a letter or digit.",
        examples=["ada"],
    ),
]
Password = Annotated[str, Meta(min_length=1, max_length=256)]
DisplayName = Annotated[str, Meta(max_length=100)]


class Registration(Struct, forbid_unknown_fields=True):
    """A new account."""

    email: Email
    username: Username
    password: Annotated[str, Meta(min_length=1, max_length=256, description="10+ characters")]
    display_name: DisplayName = ""


class Login(Struct, forbid_unknown_fields=True):
    """Sign-in with an e-mail address or a username."""

    login: Annotated[str, Meta(min_length=1, max_length=254, examples=["ada"])]
    password: Password


class Refresh(Struct, forbid_unknown_fields=True):
    """A refresh token to exchange for new tokens."""

    refresh_token: Annotated[str, Meta(min_length=1, max_length=256)]


class Tokens(Struct):
    """A session's tokens. The refresh token is shown once; keep it safe."""

    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    token_type: str = "bearer"  # noqa: S105 - the OAuth 2 token type, not a secret


MoneyLimit = Annotated[float, Meta(gt=0, le=1_000_000)]
TokenLimit = Annotated[int, Meta(ge=1, le=1_000_000_000_000)]
"""A money limit in USD; ``null`` removes it."""


class Profile(Struct):
    """An account as its owner sees it."""

    id: str
    email: str
    username: str
    display_name: str
    photo_url: str | None
    created_at: datetime
    review_plans: bool = False
    """New tasks wait for you to review their plan (the composer can say otherwise)."""
    daily_budget_usd: float | None = None
    """The most all your tasks may cost in a day (UTC); none: no limit."""
    monthly_budget_usd: float | None = None
    """The most all your tasks may cost in a calendar month (UTC); none: no limit."""
    daily_budget_tokens: int | None = None
    """The most tokens all your tasks may use in a day (UTC); none: no limit."""
    monthly_budget_tokens: int | None = None
    """The most tokens all your tasks may use in a calendar month (UTC); none: no limit."""


class ProfileUpdate(Struct, forbid_unknown_fields=True):
    """Changes to a profile; changing the e-mail address needs the current password."""

    email: Email | UnsetType = UNSET
    username: Username | UnsetType = UNSET
    display_name: DisplayName | UnsetType = UNSET
    current_password: Password | UnsetType = UNSET
    review_plans: bool | UnsetType = UNSET
    daily_budget_usd: MoneyLimit | UnsetType | None = UNSET
    monthly_budget_usd: MoneyLimit | UnsetType | None = UNSET
    daily_budget_tokens: TokenLimit | UnsetType | None = UNSET
    monthly_budget_tokens: TokenLimit | UnsetType | None = UNSET


class PasswordChange(Struct, forbid_unknown_fields=True):
    """A new password; every other session is signed out."""

    current_password: Password
    new_password: Annotated[str, Meta(min_length=1, max_length=256)]
