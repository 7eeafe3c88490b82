"""Encrypted credentials: a person's SMTP login and other tool secrets.

The gateway keeps each person's credentials encrypted at rest (AES-256-GCM, a key derived from
the deployment's secret key, the owner and kind bound in as associated data, so a row copied to
another user or kind does not open). When a call that needs them is approved, the gateway opens
them and seals them again for that one call (bound to the task and the call's key) inside the
``tool.execute`` message; the executor opens them just before the tool runs. They never reach
the LLM, the event log or the logs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "VaultError",
    "call_secrets_key",
    "open_call_secrets",
    "open_secret",
    "seal_call_secrets",
    "seal_secret",
    "stored_secrets_key",
]

_STORED = b"troika: stored credentials, v1"
_IN_CALLS = b"troika: credentials carried in approved calls, v1"
_NONCE = 12


class VaultError(ValueError):
    """A sealed value that does not open: another key, other context, or damaged."""


def _derive(secret: str, purpose: bytes) -> bytes:
    return hmac.new(secret.encode(), purpose, hashlib.sha256).digest()


def stored_secrets_key(secret: str) -> bytes:
    """The key for credentials at rest, derived from the deployment's secret key."""
    return _derive(secret, _STORED)


def call_secrets_key(secret: str) -> bytes:
    """The key for credentials carried to the executor in one approved call."""
    return _derive(secret, _IN_CALLS)


def seal_secret(key: bytes, value: dict[str, Any], context: str) -> str:
    """``value`` encrypted and authenticated, bound to ``context``.

    Returns:
        URL-safe base64 of a random nonce and the ciphertext.
    """
    nonce = os.urandom(_NONCE)
    plain = json.dumps(value, separators=(",", ":")).encode()
    sealed = AESGCM(key).encrypt(nonce, plain, context.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def open_secret(key: bytes, token: str, context: str) -> dict[str, Any]:
    """The value :func:`seal_secret` sealed with the same key and context.

    Raises:
        VaultError: It does not open with this key and context.
    """
    try:
        raw = base64.urlsafe_b64decode(token.encode())
        plain = AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], context.encode())
        value = json.loads(plain)
    except (InvalidTag, ValueError) as exc:
        raise VaultError("the sealed value does not open with this key") from exc
    if not isinstance(value, dict):
        raise VaultError("the sealed value is not an object")
    return value


CALL_SECRETS_TTL_S = 3600.0


def seal_call_secrets(
    key: bytes,
    task_id: str,
    call_key: str,
    secrets: dict[str, Any],
    ttl_s: float = CALL_SECRETS_TTL_S,
) -> str:
    """Credentials for one approved call: they open only for that task's call, and only for
    ``ttl_s`` seconds (a message redelivered much later no longer carries them)."""
    sealed = {"expires": time.time() + ttl_s, "secrets": secrets}
    return seal_secret(key, sealed, f"{task_id}\n{call_key}")


def open_call_secrets(key: bytes, task_id: str, call_key: str, token: str) -> dict[str, Any]:
    """The credentials sealed for this call.

    Raises:
        VaultError: They were sealed for another call, with another key, are damaged, or
            have expired.
    """
    sealed = open_secret(key, token, f"{task_id}\n{call_key}")
    if float(sealed.get("expires", 0)) < time.time():
        raise VaultError("the credentials sealed for this call have expired")
    secrets = sealed.get("secrets")
    if not isinstance(secrets, dict):
        raise VaultError("the sealed value holds no credentials")
    return secrets
