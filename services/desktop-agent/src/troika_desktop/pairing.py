"""Pairing this PC with a Troika account, and keeping what pairing gave it.

``troika-desktop pair <gateway> <code>`` sends the one-time code the person got from the web
app's profile (or ``troika devices pair-code``) and receives this PC's credential and the key that
checks its actions. Those two secrets go into the operating system's keyring when it has one
(Windows Credential Manager, macOS Keychain, the Secret Service on Linux desktops), otherwise into
a file only this user can read (0600, in a 0700 folder); the rest (the gateway's address, the
PC's id and name) is kept in a plain file beside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = ["Pairing", "PairingError", "PairingStore", "default_home", "pair"]

_SERVICE = "troika-desktop"


class PairingError(Exception):
    """Pairing did not work; the message says why, for the person."""


@dataclass(frozen=True, slots=True)
class Pairing:
    """This PC as the gateway knows it."""

    gateway: str
    device_id: str
    name: str
    token: str
    seal_key: str

    @property
    def key(self) -> bytes:
        """The key that checks the seals on this PC's actions."""
        return bytes.fromhex(self.seal_key)


def default_home() -> Path:
    """Where the agent keeps its files: ``TROIKA_DESKTOP_HOME``, else the user's config folder."""
    if home := os.environ.get("TROIKA_DESKTOP_HOME"):
        return Path(home)
    if os.name == "nt" and (appdata := os.environ.get("APPDATA")):
        return Path(appdata) / _SERVICE
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / _SERVICE


def _private_write(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".part")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    partial.replace(path)


class PairingStore:
    """Where a pairing is kept.

    Args:
        home: The agent's folder (made 0700).
        keyring: Try the operating system's keyring for the secrets (a file otherwise).
    """

    def __init__(self, home: Path, *, keyring: bool = True) -> None:
        self.home = home
        self.use_keyring = keyring
        self.file = home / "pairing.json"

    def save(self, pairing: Pairing) -> str:
        """Keeps the pairing; returns where the secrets went (``keyring`` or the file's path)."""
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.home.chmod(0o700)
        secrets = {"token": pairing.token, "seal_key": pairing.seal_key}
        record: dict[str, Any] = {
            "gateway": pairing.gateway,
            "device_id": pairing.device_id,
            "name": pairing.name,
        }
        where = str(self.file)
        if self.use_keyring and _keyring_set(pairing.device_id, json.dumps(secrets)):
            record["secrets"] = "keyring"
            where = "keyring"
        else:
            record["secrets"] = secrets
        _private_write(self.file, json.dumps(record, indent=2))
        return where

    def load(self) -> Pairing | None:
        """The kept pairing, or ``None`` when this PC is not paired.

        Raises:
            PairingError: The keyring no longer holds the secrets.
        """
        if not self.file.is_file():
            return None
        record = json.loads(self.file.read_text(encoding="utf-8"))
        secrets = record.get("secrets")
        if secrets == "keyring":
            stored = _keyring_get(record["device_id"])
            if stored is None:
                raise PairingError("the keyring no longer holds this PC's credential: pair again")
            secrets = json.loads(stored)
        return Pairing(
            gateway=record["gateway"],
            device_id=record["device_id"],
            name=record["name"],
            token=secrets["token"],
            seal_key=secrets["seal_key"],
        )

    def forget(self) -> bool:
        """Removes the pairing from this PC; whether there was one."""
        if not self.file.is_file():
            return False
        record = json.loads(self.file.read_text(encoding="utf-8"))
        if record.get("secrets") == "keyring":
            _keyring_delete(record["device_id"])
        self.file.unlink()
        return True


def _keyring_set(device_id: str, value: str) -> bool:
    try:
        import keyring  # noqa: PLC0415 - optional: only where the keyring is used
        from keyring.errors import KeyringError  # noqa: PLC0415
    except ImportError:
        return False
    try:
        keyring.set_password(_SERVICE, device_id, value)
    except (KeyringError, RuntimeError, OSError):
        return False  # no usable keyring here (a server, a bare session): use the file
    return True


def _keyring_get(device_id: str) -> str | None:
    import keyring  # noqa: PLC0415 - optional: only where the keyring is used

    return keyring.get_password(_SERVICE, device_id)


def _keyring_delete(device_id: str) -> None:
    import keyring  # noqa: PLC0415 - optional: only where the keyring is used
    from keyring.errors import KeyringError  # noqa: PLC0415

    with contextlib.suppress(KeyringError):
        keyring.delete_password(_SERVICE, device_id)


def pair(gateway: str, code: str, name: str | None = None, *, timeout: float = 20.0) -> Pairing:
    """Exchanges a one-time code for this PC's credential at the gateway.

    Raises:
        PairingError: The gateway could not be reached or refused the code.
    """
    gateway = gateway.rstrip("/")
    if not gateway.startswith(("http://", "https://")):
        raise PairingError(f"{gateway!r} is not a gateway address: use http(s)://host:port")
    body = {
        "code": code,
        "name": (name or socket.gethostname() or "my PC")[:64],
        "platform": f"{platform.system()} {platform.release()}"[:64],
    }
    try:
        response = httpx.post(f"{gateway}/devices/pair", json=body, timeout=timeout)
    except httpx.HTTPError as exc:
        raise PairingError(f"could not reach {gateway}: {exc}") from exc
    if response.status_code != httpx.codes.CREATED:
        try:
            detail = response.json().get("detail") or response.text
        except ValueError:
            detail = response.text
        raise PairingError(f"the gateway refused: {detail} (HTTP {response.status_code})")
    data = response.json()
    return Pairing(
        gateway=gateway,
        device_id=str(data["device_id"]),
        name=str(data["name"]),
        token=str(data["token"]),
        seal_key=str(data["seal_key"]),
    )


def as_record(pairing: Pairing) -> dict[str, str]:
    """The pairing without its secrets, for showing."""
    shown = asdict(pairing)
    shown.pop("token")
    shown.pop("seal_key")
    return shown
