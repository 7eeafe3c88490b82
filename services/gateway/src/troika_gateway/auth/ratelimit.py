"""Login rate limits, kept in Redis so every gateway replica counts together.

Two fixed windows: failed attempts per account (a guessed password locks the account's logins for
the rest of the window, not the person's other sessions), and all attempts per client address.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from troika_gateway.errors import RateLimited

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["LoginLimiter"]


class LoginLimiter:
    """Counts login attempts.

    Args:
        redis: The shared Redis.
        prefix: Key prefix.
        per_account: Failed attempts of one account per window.
        per_address: Attempts from one address per window.
        window_s: The window's length.
    """

    def __init__(
        self, redis: Redis, prefix: str, *, per_account: int, per_address: int, window_s: int
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix}login:"
        self.per_account = per_account
        self.per_address = per_address
        self.window_s = window_s

    def _account_key(self, login: str) -> str:
        digest = hashlib.sha256(login.strip().lower().encode()).hexdigest()[:32]
        return f"{self._prefix}account:{digest}"

    def _address_key(self, address: str) -> str:
        return f"{self._prefix}address:{address}"

    async def _count(self, key: str) -> int:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, self.window_s, nx=True)
            count, _ = await pipe.execute()
        return int(count)

    async def _over(self, key: str, limit: int) -> int | None:
        """Seconds to wait if ``key`` is at its limit, else None."""
        count = await self._redis.get(key)
        if count is None or int(count) < limit:
            return None
        ttl = await self._redis.ttl(key)
        return max(int(ttl), 1)

    async def attempt(self, login: str, address: str, *, what: str = "sign-in") -> None:
        """Records an attempt; refuses it if either limit is reached (``what``: the kind of
        attempt, as the refusal names it).

        Raises:
            RateLimited: With the seconds to wait.
        """
        wait = await self._over(self._account_key(login), self.per_account)
        if wait is not None:
            raise RateLimited(f"too many failed {what}s for this account; try again later", wait)
        address_key = self._address_key(address)
        if await self._count(address_key) > self.per_address:
            wait = max(int(await self._redis.ttl(address_key)), 1)
            raise RateLimited(f"too many {what} attempts from this address; try again later", wait)

    async def failed(self, login: str) -> None:
        """Counts a failed attempt against the account."""
        await self._count(self._account_key(login))

    async def succeeded(self, login: str) -> None:
        """Forgets the account's failed attempts."""
        await self._redis.delete(self._account_key(login))
