"""Password hashing (Argon2id, off the event loop) and the strength rules for new passwords."""

from __future__ import annotations

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["MAX_PASSWORD_LENGTH", "MIN_PASSWORD_LENGTH", "Passwords", "weaknesses"]

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256  # hashing is deliberately slow; an unbounded input is a denial of service

_COMMON = frozenset(
    {
        "password", "password1", "password12", "password123", "passw0rd", "qwerty", "qwertyuiop",
        "1234567890", "0123456789", "123456789", "iloveyou", "letmein", "welcome", "welcome1",
        "admin", "administrator", "monkey", "dragon", "football", "baseball", "sunshine",
        "princess", "trustno1", "changeme", "secret", "abc123", "abcdefghij", "q1w2e3r4t5",
        "1q2w3e4r5t", "zaq12wsx", "asdfghjkl", "troika", "troika123",
    }
)  # fmt: skip


def weaknesses(password: str, *, username: str = "", email: str = "") -> list[str]:
    """What is wrong with a new password, in plain words (empty when it is acceptable)."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"use at most {MAX_PASSWORD_LENGTH} characters")
    lowered = password.lower()
    if lowered in _COMMON or lowered.rstrip("!0123456789") in _COMMON:
        problems.append("this password is too common")
    if len(set(password)) < 5:
        problems.append("use more different characters")
    for name, value in (
        ("username", username),
        ("e-mail address", email.split("@", maxsplit=1)[0]),
    ):
        if len(value) >= 3 and value.lower() in lowered:
            problems.append(f"do not include your {name}")
    return problems


class Passwords:
    """Argon2id hashing in a worker thread, so a login never stalls other requests."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._dummy = self._hasher.hash("a password nobody has: equalises timing for unknown users")

    async def hash(self, password: str) -> str:
        """The Argon2id hash of ``password``."""
        return await anyio.to_thread.run_sync(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches; with no hash (unknown user) it spends the same time."""

        def check() -> bool:
            try:
                return self._hasher.verify(password_hash or self._dummy, password) and bool(
                    password_hash
                )
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await anyio.to_thread.run_sync(check)

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with weaker parameters than today's."""
        return self._hasher.check_needs_rehash(password_hash)
