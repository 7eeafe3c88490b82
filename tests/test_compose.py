"""docker-compose.yml and the images, checked without a container engine: each service gets
only the settings it needs, runs the command `troika up` runs, and — started as processes with
the compose file's own environment (its host names mapped to this machine's servers) — passes
its image's health check and carries a task through with the others."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from troika_gateway.keys import env_lines
from troika_testkit import wait_for
from troika_testkit.agents import plan_answer
from troika_testkit.ports import free_port

from .test_observability import (
    assert_counters_moved,
    assert_one_connected_trace,
    scrape,
    whole_trace,
)
from .test_pipeline import approve_until_final, sign_in, step_script

ROOT = Path(__file__).resolve().parents[1]
APP = ("gateway", "worker", "planner", "executor", "reviewer", "web")
AGENTS = ("planner", "executor", "reviewer")
DOCKERFILES = {
    "gateway": "services/gateway/Dockerfile",
    "worker": "services/gateway/Dockerfile",
    "planner": "services/planner/Dockerfile",
    "executor": "services/executor/Dockerfile",
    "reviewer": "services/reviewer/Dockerfile",
    "web": "frontend/Dockerfile",
}
# What `troika up` runs for each (cli/src/troika/stack.py): the compose file runs the same.
MODULES = {
    "gateway": "troika_gateway",
    "worker": "troika_gateway.worker",
    "planner": "troika_planner",
    "executor": "troika_executor",
    "reviewer": "troika_reviewer",
    "web": "troika_frontend",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}``."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise KeyError(f"{name}: {rest}")
        return rest if kind == "-" else ""

    return _VARIABLE.sub(one, value)


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def environment(service: str, env: dict[str, str]) -> dict[str, str]:
    """A service's environment as compose gives it, ``.env`` interpolated."""
    values = compose()["services"][service].get("environment") or {}
    return {name: interpolate(str(value), env) for name, value in values.items()}


@dataclass(frozen=True)
class Image:
    """What a Dockerfile's final stage says."""

    user: str
    healthcheck: list[str]
    command: list[str]


def image(path: str) -> Image:
    text = (ROOT / path).read_text().replace("\\\n", " ")
    final = text.rsplit("\nFROM ", 1)[1]
    found = {}
    for line in final.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word in ("USER", "CMD", "HEALTHCHECK"):
            found[word] = rest.strip()
    health = found["HEALTHCHECK"].split(" CMD ", 1)[1]
    return Image(found["USER"], yaml.safe_load(health), yaml.safe_load(found["CMD"]))


def health_command(service: str) -> list[str]:
    override = compose()["services"][service].get("healthcheck")
    if override:
        return [part for part in override["test"] if part != "CMD"]
    return image(DOCKERFILES[service]).healthcheck


SECRETS = dict(line.split("=", 1) for line in env_lines() if "=" in line and line[0] != "#")


def test_every_service_gets_only_the_settings_it_needs() -> None:
    env = SECRETS | {"TROIKA_LLM_API_KEY": "sk-test"}
    everything = every_environment(env)
    for agent in AGENTS:
        assert "TROIKA_SECRET_KEY" not in everything[agent]
        assert "TROIKA_DATABASE_URL" not in everything[agent]
        assert "TROIKA_REDIS_URL" not in everything[agent]
    assert {"TROIKA_APPROVAL_KEY", "TROIKA_CALL_SECRETS_KEY"} <= set(everything["executor"])
    assert "TROIKA_APPROVAL_KEY" not in everything["planner"]
    assert not any(re.search(r"KEY|SECRET|PASSWORD|DATABASE|REDIS", name)
                   for name in everything["web"])  # fmt: skip
    assert not any(SECRETS["POSTGRES_PASSWORD"] in value for value in everything["web"].values())
    # The services that touch task files reach the bucket as its user, never as MinIO's admin.
    for service in ("gateway", "worker", "executor"):
        assert everything[service]["TROIKA_FILES"] == "s3"
        assert everything[service]["TROIKA_FILES_ENDPOINT_URL"] == "http://minio:9000"
        secret = everything[service]["TROIKA_FILES_SECRET_ACCESS_KEY"]
        assert secret == SECRETS["TROIKA_FILES_SECRET_ACCESS_KEY"]
    for service in ("planner", "reviewer", "web"):
        assert not any(name.startswith("TROIKA_FILES") for name in everything[service])
    assert not any(SECRETS["MINIO_ROOT_PASSWORD"] in value
                   for values in everything.values() for value in values.values())  # fmt: skip
    # Secrets must be given: compose refuses to start without them, saying which.
    for name in ("TROIKA_SECRET_KEY", "POSTGRES_PASSWORD", "TROIKA_APPROVAL_KEY",
                 "TROIKA_FILES_SECRET_ACCESS_KEY"):  # fmt: skip
        without = {k: v for k, v in env.items() if k != name}
        with pytest.raises(KeyError, match=f"{name}: set {name} in .env"):
            every_environment(without)


def every_environment(env: dict[str, str]) -> dict[str, dict[str, str]]:
    return {service: environment(service, env) for service in APP}


def test_each_service_runs_what_troika_up_runs_from_a_non_root_image_with_a_health_check() -> None:
    services = compose()["services"]
    for service in APP:
        command = services[service]["command"]
        assert command == ["python", "-m", MODULES[service]], service
        # Built here, never pulled: `docker compose up` builds what it lacks.
        assert services[service]["build"]["dockerfile"] == DOCKERFILES[service]
        built = image(DOCKERFILES[service])
        assert re.fullmatch(r"[1-9]\d*:\d+", built.user), (service, built.user)  # not root
        if service != "worker":  # the worker runs from the gateway's image
            assert built.command == command, service
        assert health_command(service)[0] == "troika-health"
    for agent in AGENTS:
        assert services[agent]["deploy"]["replicas"] >= 1
    for service in ("gateway", "worker", "web", *AGENTS):
        for server, needed in services[service]["depends_on"].items():
            setup = server == "minio-setup"
            ready = "service_completed_successfully" if setup else "service_healthy"
            assert needed == {"condition": ready}, (service, server)
    for service in ("gateway", "executor"):  # the bucket and its user are made before they start
        assert "minio-setup" in services[service]["depends_on"]
    # The servers keep their data in volumes and report their health.
    for server in ("nats", "postgres", "redis", "minio"):
        assert services[server]["volumes"]
        assert services[server]["healthcheck"]["test"]
    # No folder is shared between services: a replica may run on any host.
    mounted = [v for name in APP for v in services[name].get("volumes", [])]
    assert len({v.split(":")[0] for v in mounted}) == len(mounted), mounted
    source = (ROOT / "cli/src/troika/stack.py").read_text()
    for module in ("troika_gateway", "troika_gateway.worker", "troika_frontend"):
        assert f'"-m", "{module}"' in source  # still what `troika up` runs
    assert '"-m", f"troika_{agent}"' in source


def _local(value: str, servers: dict[str, str]) -> str:
    """What the compose network's host names stand for on this machine."""
    for compose_address, here in servers.items():
        value = value.replace(compose_address, here)
    return value


@dataclass
class Deployment:
    """The compose file's app services as processes on this machine."""

    dotenv: dict[str, str]
    servers: dict[str, str]  # compose host address -> this machine's
    database_url: str
    data_dir: Path  # a folder per service within it, as each container has its own /data
    api_port: int
    logs: Path
    metrics_ports: dict[str, int] = field(default_factory=dict)  # each container's 9100, here

    def env(self, service: str) -> dict[str, str]:
        """The service's compose environment, its host names mapped to this machine."""
        base = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
        base["OTEL_BSP_SCHEDULE_DELAY"] = "200"  # spans leave at once, not every 5 s
        env = {k: _local(v, self.servers) for k, v in environment(service, self.dotenv).items()}
        if "TROIKA_DATABASE_URL" in env:  # the `postgres` service: a database of this test's own
            env["TROIKA_DATABASE_URL"] = self.database_url
        if env.get("TROIKA_DATA_DIR") == "/data":
            env["TROIKA_DATA_DIR"] = str(self.data_dir / service)
        if service == "gateway":  # the image sets these (ENV); here the port is a free one
            env |= {"TROIKA_GATEWAY_HOST": "127.0.0.1", "TROIKA_GATEWAY_PORT": str(self.api_port)}
        if "TROIKA_METRICS_PORT" in env:  # one host: a port of its own each
            port = self.metrics_ports.setdefault(service, free_port())
            env |= {"TROIKA_METRICS_HOST": "127.0.0.1", "TROIKA_METRICS_PORT": str(port)}
        return base | env

    def start(self, service: str) -> subprocess.Popen[bytes]:
        command = compose()["services"][service]["command"]
        assert command[0] == "python"
        with (self.logs / f"{service}.log").open("wb") as log:
            return subprocess.Popen(
                [sys.executable, *command[1:]],
                env=self.env(service),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def health(self, service: str) -> tuple[int, str]:
        """Runs the service's health check as its container would; its exit status and why."""
        check = health_command(service)
        if check[:2] == ["troika-health", "http"]:
            check = [*check[:2], check[2].replace(":8000/", f":{self.api_port}/")]
        done = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name(check[0])), *check[1:], env=self.env(service),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, why = await done.communicate()
        return int(done.returncode or 0), why.decode()


def stop(processes: dict[str, subprocess.Popen[bytes]], logs: Path) -> None:
    for process in processes.values():
        process.terminate()
    for name, process in processes.items():
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.returncode not in (0, -15):
            print(f"----- {name} -----\n{(logs / f'{name}.log').read_text()}")  # noqa: T201


@pytest.mark.slow
async def test_the_compose_services_started_as_processes_are_healthy_and_run_a_task(
    tmp_path, nats_url, redis_url, postgres_url, bus_prefix, scripted_llm, s3_server, otlp
) -> None:
    api_port = free_port()
    llm = {"TROIKA_LLM_API_KEY": "test-key", "TROIKA_LLM_BASE_URL": scripted_llm.base_url}
    bucket = await s3_server.new_bucket()  # as minio-setup makes it
    wiring = {"TROIKA_BUS_PREFIX": bus_prefix, "TROIKA_FILES_BUCKET": bucket,
              "TROIKA_OTEL_ENDPOINT": otlp.endpoint}  # fmt: skip
    deployment = Deployment(
        dotenv=SECRETS | llm | wiring,
        servers={
            "nats://nats:4222": nats_url,
            "redis://redis:6379/0": redis_url,
            "http://gateway:8000": f"http://127.0.0.1:{api_port}",
            "http://minio:9000": s3_server.url,
        },
        database_url=postgres_url.replace("postgresql://", "postgresql+asyncpg://", 1),
        data_dir=tmp_path / "data",
        api_port=api_port,
        logs=tmp_path,
    )
    processes = {service: deployment.start(service) for service in ("gateway", "worker", *AGENTS)}
    try:
        for service in processes:

            async def healthy(service: str = service) -> bool:
                return (await deployment.health(service))[0] == 0

            await wait_for(healthy, timeout=60, what=f"{service}'s health check")
        assert set(deployment.metrics_ports) == {"worker", *AGENTS}
        scrapes = {service: f"http://127.0.0.1:{port}/metrics"
                   for service, port in deployment.metrics_ports.items()}  # fmt: skip
        scrapes["gateway"] = f"http://127.0.0.1:{api_port}/metrics"
        before = {service: await scrape(url) for service, url in scrapes.items()}

        # Wired together as compose wires them, they carry a task through.
        scripted_llm.reply("PlanDraft", plan_answer(("notes", [], ["create_file"])))
        scripted_llm.always("StepDecision", step_script)
        scripted_llm.always("ReviewDecision", {"verdict": "approve", "summary": "Done."})
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=15) as http:
            headers = await sign_in(http)
            made = await http.post("/tasks", headers=headers, json={"objective": "Write notes"})
            assert made.status_code == 201, made.text
            task = await approve_until_final(http, headers, made.json()["id"])
            assert task["status"] == "completed", task
            [notes] = (await http.get(f"/tasks/{task['id']}/files", headers=headers)).json()
            assert (await http.get(notes["url"], headers=headers)).text == "# notes\n"
        assert "notes.md" in await s3_server.names(bucket, f"tasks/{task['id']}/")

        # Each service's metrics counted its part of the run.
        after = {service: await scrape(url) for service, url in scrapes.items()}
        assert_counters_moved(before, after)
        # The task is one trace across every service, from the person's request on.
        await wait_for(lambda: whole_trace(otlp, task["id"]), timeout=30, what="the task's trace")
        assert_one_connected_trace(otlp.received(), task["id"])

        # A replica that stopped is unhealthy at once: its container would be restarted.
        processes["reviewer"].terminate()
        await asyncio.to_thread(processes["reviewer"].wait, 15)
        status, why = await deployment.health("reviewer")
        assert status == 1
        assert "reviewer replica" in why
    finally:
        await asyncio.to_thread(stop, processes, tmp_path)
