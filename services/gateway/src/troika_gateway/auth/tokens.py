"""Access tokens (short-lived JWTs naming their session) and refresh tokens (opaque, hashed)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from troika_gateway.errors import Unauthorized

__all__ = ["AccessClaims", "TokenIssuer", "hash_refresh_token", "new_refresh_token"]

_ALGORITHM = "HS256"
_ISSUER = "troika"
_AUDIENCE = "troika-api"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says."""

    user_id: str
    session_id: str
    expires_at: datetime


def new_refresh_token() -> str:
    """A fresh, unguessable refresh token (shown to the client once, stored only hashed)."""
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    """The stored form of a refresh token (SHA-256: the token is random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenIssuer:
    """Signs and verifies access tokens.

    Args:
        secret_key: The HMAC key.
        ttl_s: An access token's lifetime.
    """

    def __init__(self, secret_key: str, ttl_s: int) -> None:
        self._key = secret_key
        self.ttl_s = ttl_s

    def issue(self, user_id: str, session_id: str, now: datetime | None = None) -> str:
        """A signed access token for the session."""
        issued = now or datetime.now(UTC)
        claims = {
            "sub": user_id,
            "sid": session_id,
            "iat": issued,
            "exp": issued + timedelta(seconds=self.ttl_s),
            "iss": _ISSUER,
            "aud": _AUDIENCE,
            "typ": "access",
        }
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM)

    def verify(self, token: str) -> AccessClaims:
        """Checks signature, expiry, issuer, audience and type.

        Raises:
            Unauthorized: The token is not one this gateway issued, or it expired.
        """
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                audience=_AUDIENCE,
                issuer=_ISSUER,
                options={"require": ["exp", "iat", "sub", "sid"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the access token has expired; refresh it") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("the access token is not valid") from exc
        if claims.get("typ") != "access":
            raise Unauthorized("the access token is not valid")
        return AccessClaims(
            user_id=str(claims["sub"]),
            session_id=str(claims["sid"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
