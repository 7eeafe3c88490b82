"""The whole system on one machine: embedded servers, every service supervised, readiness checks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import sys
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

import httpx
import nats
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from troika.embedded import EmbeddedNats, EmbeddedValkey, free_port
from troika.local_llm import (
    LOCAL_CONTEXT,
    LOCAL_MAX_TOKENS,
    LOCAL_SAMPLING,
    ModelMissing,
    default_gguf,
    model_name,
)
from troika.supervisor import ChildSpec, GaveUp, Supervisor
from troika_shared.approvals import approval_key
from troika_shared.health import ping_service
from troika_shared.private import keep_private
from troika_shared.settings import shown
from troika_shared.subjects import Topology
from troika_shared.vault import call_secrets_key

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from nats.aio.client import Client
    from pydantic_settings import BaseSettings

    from troika.settings import UpSettings

__all__ = [
    "AGENTS",
    "Component",
    "ModelMissing",
    "NotReady",
    "PortInUse",
    "Stack",
    "ping_service",
]

AGENTS = ("planner", "executor", "reviewer")
log = structlog.get_logger("troika.up")


class PortInUse(Exception):
    """A port ``troika up`` listens on (the gateway's, the web app's) is already taken.

    Attributes:
        host: The address.
        port: The port.
        option: The command-line option that chooses another port.
        variable: The environment variable that chooses another port.

    ``user`` names the component of this stack that wants the same port, when one does.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        option: str = "--port",
        variable: str = "TROIKA_GATEWAY_PORT",
        user: str = "",
    ) -> None:
        by = f" by the {user}" if user else ""
        super().__init__(
            f"{host}:{port} is already in use{by}; stop what uses it, or choose another port "
            f"with {option} or {variable}"
        )
        self.host = host
        self.port = port
        self.option = option
        self.variable = variable


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class NotReady(Exception):
    """The stack did not become ready.

    Attributes:
        components: Every component with its last known state.
    """

    def __init__(self, detail: str, components: list[Component]) -> None:
        super().__init__(detail)
        self.components = components


@dataclass
class Component:
    """One row of the status table."""

    name: str
    address: str
    ready: bool = False
    note: str = ""


def _without_secret(env: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if name != "TROIKA_SECRET_KEY"}


_WEB_SETTINGS = ("TROIKA_LOG_", "TROIKA_WEB_")


def _web_only(env: dict[str, str]) -> dict[str, str]:
    """The web app's environment: the process's own, less every Troika setting but its own."""
    return {
        name: value
        for name, value in env.items()
        if not (name.startswith("TROIKA_") or name == "OPENAI_API_KEY")
        or name.startswith(_WEB_SETTINGS)
    }


def _agent_settings() -> dict[str, type[BaseSettings]]:
    """Each agent's settings class (imported when a stack starts: the executor's brings its
    tools)."""
    from troika_executor.settings import ExecutorSettings  # noqa: PLC0415
    from troika_planner.settings import PlannerSettings  # noqa: PLC0415
    from troika_reviewer.settings import ReviewerSettings  # noqa: PLC0415

    return {"planner": PlannerSettings, "executor": ExecutorSettings, "reviewer": ReviewerSettings}


def _read_by(settings: type[BaseSettings], env: dict[str, str]) -> dict[str, str]:
    """``env`` less the Troika settings ``settings`` does not read (the database, Redis, the
    social platforms' apps…): a process gets only the settings it needs."""
    wanted = {f"TROIKA_{name.upper()}" for name in settings.model_fields}
    return {name: value for name, value in env.items()
            if not name.startswith("TROIKA_") or name in wanted}  # fmt: skip


def _agents_env(env: dict[str, str]) -> dict[str, dict[str, str]]:
    """Each agent's environment: only the settings it reads, and never the deployment's secret
    key (it signs sessions and opens every stored credential); the executor gets only the two
    keys derived from it that it needs to check approvals and open the credentials sealed into
    them."""
    secret = env["TROIKA_SECRET_KEY"]
    without = _without_secret(env)
    derived = {
        "TROIKA_APPROVAL_KEY": approval_key(secret).hex(),
        "TROIKA_CALL_SECRETS_KEY": call_secrets_key(secret).hex(),
    }
    settings = _agent_settings()
    return {
        agent: _read_by(settings[agent], without | (derived if agent == "executor" else {}))
        for agent in AGENTS
    }


class Stack:
    """Starts, checks and stops the one-machine system.

    Args:
        settings: Where things go and what to start.
        out: Where the services' prefixed output goes.
        color: Colour their labels.
        env: Variables for every service on top of this process's environment.
    """

    def __init__(
        self,
        settings: UpSettings,
        out: IO[str] = sys.stdout,
        *,
        color: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.extra_env = dict(env or {})
        self.out = out
        self.color = color
        self.topology = Topology(settings.bus_prefix)
        self.data_dir = settings.data_dir.resolve()
        self.nats_server: EmbeddedNats | None = None
        self.valkey_server: EmbeddedValkey | None = None
        self.supervisor: Supervisor | None = None
        self.nats_url = settings.nats_url or ""
        self.redis_url = settings.redis_url or ""
        self.local_model: Path | None = None
        self.llm_url = ""

    @property
    def gateway_url(self) -> str:
        """The gateway API's address."""
        return f"http://{self.settings.gateway_host}:{self.settings.gateway_port}"

    @property
    def web_url(self) -> str:
        """The web app's address, as people open it on this machine."""
        host = self.settings.web_host
        if host in ("0.0.0.0", "::"):  # noqa: S104 - listening everywhere: open it locally
            host = "127.0.0.1"
        return f"http://{host}:{self.settings.web_port}"

    @property
    def open_url(self) -> str:
        """The address people open: the public one when set, else the web app's own."""
        return (self.settings.web_public_url or self.web_url).rstrip("/")

    async def start(self) -> None:
        """Starts the embedded servers that are not configured elsewhere, then every service.

        Raises:
            PortInUse: The gateway's or the web app's port is taken by another program.
            ModelMissing: The local model is asked for, and there is no GGUF file to serve.
        """
        s = self.settings
        if not _port_free(s.gateway_host, s.gateway_port):
            raise PortInUse(s.gateway_host, s.gateway_port)
        if s.web and (s.web_port == s.gateway_port or not _port_free(s.web_host, s.web_port)):
            raise PortInUse(
                s.web_host,
                s.web_port,
                option="--web-port",
                variable="TROIKA_WEB_PORT",
                user="gateway" if s.web_port == s.gateway_port else "",
            )
        if self.settings.serves_local_llm:
            self.local_model = self.settings.llm_gguf or default_gguf()
            if not self.local_model.is_file():
                raise ModelMissing(f"{self.local_model} is not a file (TROIKA_LLM_GGUF)")
            self.llm_url = f"http://127.0.0.1:{free_port()}/v1"
        keep_private(self.data_dir)  # the servers and services it starts inherit the umask
        if not self.nats_url:
            # The gateway, its worker and this process share the first user; each agent gets
            # a user of its own, with only the subjects it needs.
            topology = Topology(self.settings.bus_prefix)
            users = {"troika": None} | {
                agent: topology.agent_permissions(agent) for agent in AGENTS
            }
            self.nats_server = EmbeddedNats(self.data_dir / "nats", users=users)
            self.nats_url = await asyncio.to_thread(self.nats_server.start)
        if not self.redis_url:
            self.valkey_server = EmbeddedValkey(self.data_dir / "valkey")
            self.redis_url = await asyncio.to_thread(self.valkey_server.start)
        self.supervisor = Supervisor(self.out, color=self.color)
        await self.supervisor.start(self._specs())

    def _specs(self) -> list[ChildSpec]:
        s = self.settings
        env = {
            **os.environ,
            **self.extra_env,
            "TROIKA_NATS_URL": self.nats_url,
            "TROIKA_REDIS_URL": self.redis_url,
            "TROIKA_BUS_PREFIX": s.bus_prefix,
            "TROIKA_DATA_DIR": str(self.data_dir),
            "TROIKA_GATEWAY_HOST": s.gateway_host,
            "TROIKA_GATEWAY_PORT": str(s.gateway_port),
            "TROIKA_LOG_LEVEL": s.log_level,
            # Children write to a pipe; the supervisor's terminal decides how they should look.
            "TROIKA_LOG_FORMAT": "console" if s.log_format == "auto" else s.log_format,
            "PYTHONUNBUFFERED": "1",
        }
        if "TROIKA_SECRET_KEY" not in env:
            env["TROIKA_SECRET_KEY"] = _secret_key(self.data_dir)
        if self.color:
            env["FORCE_COLOR"] = "1"
        specs = []
        if s.web:
            # Started first, since its build takes longest. It talks to the gateway's API alone,
            # so it gets none of the system's settings: no secret key, no bus, no LLM key.
            web_env = _web_only(env) | {
                "TROIKA_GATEWAY_URL": self.gateway_url,
                "TROIKA_WEB_HOST": s.web_host,
                "TROIKA_WEB_PORT": str(s.web_port),
                # Its own build folder: the build holds the address the pages connect back to.
                "TROIKA_WEB_BUILD_DIR": str(self.data_dir / "web"),
            }
            specs.append(ChildSpec("web", (sys.executable, "-m", "troika_frontend"), web_env))
        if self.local_model is not None:
            env["TROIKA_LLM_PROVIDER"] = "local"
            env["TROIKA_LLM_BASE_URL"] = self.llm_url
            env["TROIKA_LLM_MODEL"] = model_name(self.local_model)
            # The agents measure each request against the context the server gives it, and
            # keep answers short enough to leave room for the question.
            context = env.setdefault("TROIKA_LLM_CONTEXT_TOKENS", str(LOCAL_CONTEXT))
            env.setdefault("TROIKA_LLM_MAX_TOKENS", str(LOCAL_MAX_TOKENS))
            env.setdefault("TROIKA_LLM_EXTRA_BODY", json.dumps(LOCAL_SAMPLING))
            port = self.llm_url.rsplit(":", 1)[1].split("/")[0]
            argv = ("-m", "troika.local_llm", "--port", port, "--gguf", str(self.local_model),
                    "--context", context)  # fmt: skip
            specs.append(ChildSpec("llm", (sys.executable, *argv), _without_secret(env)))
        specs += [
            ChildSpec("gateway", (sys.executable, "-m", "troika_gateway"), env),
            ChildSpec("worker", (sys.executable, "-m", "troika_gateway.worker"), env),
        ]
        agents_env = _agents_env(env)
        if self.nats_server is not None:
            for agent in AGENTS:
                agents_env[agent]["TROIKA_NATS_URL"] = self.nats_server.url_for(agent)
        for agent in AGENTS:
            for replica in range(1, s.agent_replicas + 1):
                name = agent if s.agent_replicas == 1 else f"{agent}-{replica}"
                command = (sys.executable, "-m", f"troika_{agent}")
                specs.append(ChildSpec(name, command, agents_env[agent]))
        return specs

    def components(self) -> list[Component]:
        """The status table's rows: the web app (what people open) first, then start order."""
        nats_note = (
            f"embedded, data in {self.data_dir / 'nats'}" if self.nats_server else "external"
        )
        redis_note = (
            f"embedded, data in {self.data_dir / 'valkey'}" if self.valkey_server else "external"
        )
        rows = []
        if self.settings.web:
            rows.append(Component("web", self.open_url, note="open this in your browser"))
        rows += [
            Component("nats", shown(self.nats_url), note=nats_note),
            Component(
                "valkey" if self.valkey_server else "redis", shown(self.redis_url), note=redis_note
            ),
        ]
        if self.local_model is not None:
            note = f"local model {model_name(self.local_model)}"
            rows.append(Component("llm", self.llm_url, note=note))
        rows += [
            Component(
                "gateway", self.gateway_url, note=f"API docs: {self.gateway_url}/schema/swagger"
            ),
        ]
        rows.append(
            Component("worker", f"nats service {self.topology.service_name('orchestrator')}")
        )
        rows += [
            Component(agent, f"nats service {self.topology.service_name(agent)}")
            for agent in AGENTS
        ]
        return rows

    async def wait_ready(self, timeout: float) -> list[Component]:
        """Polls every component until all are ready.

        Raises:
            NotReady: A child gave up, or ``timeout`` passed first.
        """
        assert self.supervisor is not None  # noqa: S101 - started first
        rows = self.components()
        nc = await nats.connect(self.nats_url, connect_timeout=5, max_reconnect_attempts=-1)
        try:
            async with httpx.AsyncClient(timeout=2.0) as http, asyncio.timeout(timeout):
                while not all(row.ready for row in rows):
                    if self.supervisor.failed.done():
                        gave_up = self.supervisor.failed.result()
                        raise NotReady(_gave_up_message(gave_up), rows)
                    await self._probe(rows, nc, http)
                    if not all(row.ready for row in rows):
                        await asyncio.sleep(0.2)
        except TimeoutError:
            waiting = ", ".join(row.name for row in rows if not row.ready)
            raise NotReady(f"not ready after {timeout:.0f}s: {waiting}", rows) from None
        finally:
            await nc.close()
        return rows

    async def _probe(self, rows: list[Component], nc: Client, http: httpx.AsyncClient) -> None:
        for row in rows:
            if row.ready:
                continue
            if row.name == "nats":
                row.ready = nc.is_connected
            elif row.name in ("valkey", "redis"):
                with contextlib.suppress(RedisError, OSError):
                    async with Redis.from_url(self.redis_url, socket_timeout=2.0) as redis:
                        row.ready = bool(await redis.ping())
            elif row.name == "llm":
                with contextlib.suppress(httpx.HTTPError):
                    health = self.llm_url.removesuffix("/v1") + "/health"
                    row.ready = (await http.get(health)).status_code == 200
            elif row.name == "web":
                with contextlib.suppress(httpx.HTTPError):
                    row.ready = (await http.get(f"{self.web_url}/ping")).status_code == 200
            elif row.name == "gateway":
                with contextlib.suppress(httpx.HTTPError):
                    row.ready = (await http.get(f"{self.gateway_url}/ready")).status_code == 200
            elif row.name == "worker":
                answers = await ping_service(nc, self.topology.service_name("orchestrator"))
                row.ready = len(answers) >= 1
            else:
                answers = await ping_service(nc, self.topology.service_name(row.name))
                row.ready = len(answers) >= self.settings.agent_replicas
                row.note = f"{len(answers)} of {self.settings.agent_replicas} replicas ready"

    async def stop(self) -> None:
        """Stops every service, then the embedded servers."""
        if self.supervisor is not None:
            await self.supervisor.stop()
        for server in (self.valkey_server, self.nats_server):
            if server is not None:
                await asyncio.to_thread(server.stop)


def _secret_key(data_dir: Path) -> str:
    """The gateway's signing key for this data directory: made once, kept readable by us alone."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    return key


def _gave_up_message(gave_up: GaveUp) -> str:
    tail = "\n".join(f"    {line}" for line in gave_up.last_lines[-15:])
    return f"{gave_up}. Its last lines:\n{tail}"
