"""Password-attempt limits, kept in Redis so every gateway replica counts together.

Three counters, none of which lets a stranger lock the owner out:

- **per address**, every attempt: one address cannot spray many accounts;
- **per account and address**, failures: an address that guessed wrong too often may not try that
  account again until its failures are older than the window (the right password included), while
  the owner elsewhere is untouched;
- **per account**, failures from anywhere (whichever name was typed, the username or the e-mail
  address): past the limit the account is slowed down, not closed. An address the account has
  signed in from before still gets in with the right password at once; any other address waits
  between attempts, 1 s after the first failure over the limit, doubling with each further one up to
  ``max_delay_s``. Guessing from many addresses becomes slow, and the owner on a new machine waits
  seconds, never the whole window.

The same limits guard every check of a password: sign-in, and the current password that a new
password or e-mail address needs. Sign-ups count against the address's attempts too, so asking
which e-mail addresses have an account is as slow as guessing passwords.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

from troika_gateway.errors import RateLimited

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["LoginLimiter"]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class LoginLimiter:
    """Counts password attempts.

    Args:
        redis: The shared Redis.
        prefix: Key prefix.
        per_account: Failures of one account (from one address: refused; from anywhere: slowed
            down) within the window.
        per_address: Attempts from one address per window.
        window_s: How long a failure counts (from the latest one).
        max_delay_s: The longest wait between attempts on a slowed-down account.
    """

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        per_account: int,
        per_address: int,
        window_s: int,
        max_delay_s: int = 60,
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix}login:"
        self.per_account = per_account
        self.per_address = per_address
        self.window_s = window_s
        self.max_delay_s = max_delay_s

    def _account_key(self, account: str) -> str:
        return f"{self._prefix}account:{_digest(account.strip().lower())}"

    def _pair_key(self, account: str, address: str) -> str:
        return f"{self._prefix}pair:{_digest(account.strip().lower() + chr(0) + address)}"

    def _address_key(self, address: str) -> str:
        return f"{self._prefix}address:{address}"

    def delay_after(self, failures: int) -> int:
        """Seconds an unknown address waits after the latest of ``failures`` on an account."""
        over = failures - self.per_account
        return 0 if over < 0 else min(2**over, self.max_delay_s)

    async def attempt(
        self, account: str, address: str, *, known: bool = False, what: str = "sign-in"
    ) -> None:
        """Records an attempt on ``account`` from ``address``; refuses it if a limit says so.

        Args:
            account: What the attempt is on: the account's id when the name typed is one, else
                the name as typed (so a guessed name counts like a real one).
            address: The client's address.
            known: The account has signed in from this address before (not slowed down).
            what: The kind of attempt, as the refusal names it.

        Raises:
            RateLimited: With the seconds to wait.
        """
        await self.from_address(address, what=what)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._pair_key(account, address))
            pipe.ttl(self._pair_key(account, address))
            pipe.hmget(self._account_key(account), ["failures", "last"])
            pair, pair_ttl, (failures, last) = await pipe.execute()
        if pair is not None and int(pair) >= self.per_account:
            raise RateLimited(
                f"too many failed {what}s for this account from this address; try again later",
                max(int(pair_ttl), 1),
            )
        if known or failures is None:
            return
        wait = float(last) + self.delay_after(int(failures)) - time.time()
        if wait > 0:
            raise RateLimited(
                f"this account had many failed {what}s lately, so attempts from a new place are "
                "slowed down; try again in a moment",
                max(round(wait), 1),
            )

    async def from_address(self, address: str, *, what: str) -> None:
        """Records an attempt from ``address`` (every password check, and sign-ups, which are
        on no account); refuses it past the address's limit.

        Raises:
            RateLimited: With the seconds to wait.
        """
        key = self._address_key(address)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, self.window_s, nx=True)
            pipe.ttl(key)
            count, _, ttl = await pipe.execute()
        if int(count) > self.per_address:
            raise RateLimited(
                f"too many {what} attempts from this address; try again later", max(int(ttl), 1)
            )

    async def failed(self, account: str, address: str) -> None:
        """Counts a failed attempt against the account, from the address and overall."""
        pair_key, account_key = self._pair_key(account, address), self._account_key(account)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(pair_key)
            pipe.expire(pair_key, self.window_s)
            pipe.hincrby(account_key, "failures", 1)
            pipe.hset(account_key, "last", repr(time.time()))
            pipe.expire(account_key, self.window_s)
            await pipe.execute()

    async def succeeded(self, account: str, address: str) -> None:
        """Forgets the failures from this address (the owner's typos). The account's count
        stays until the window passes: someone else may be guessing, and the owner signing in
        must not give them a fresh start."""
        await self._redis.delete(self._pair_key(account, address))
