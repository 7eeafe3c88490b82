"""Three hosts on this machine (Linux network namespaces): the servers (NATS, PostgreSQL, Valkey
and an S3 store) on one, and two app hosts, each with a gateway API, a worker, a
planner, an executor and a reviewer, and a data folder per process. A person works through
both APIs; one app host is cut off from the network in the middle of the run, with plans,
steps and reviews in its hands: its work moves to the other host, every task completes, and
no tool call runs twice (each call posts to a server that counts what it receives).

A tool call already running on the host that is cut off is not among those: whether it had an
effect is known only to that host, which is why the calls the person approved before the cut
have all reported back by then.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx
import pytest

from troika_testkit import scaled, wait_for
from troika_testkit.agents import llm_env, plan_answer
from troika_testkit.host_servers import HostServers, can_run_servers
from troika_testkit.hosts import Network, Relay, can_make_hosts
from troika_testkit.processes import ServiceProcess, gateway_ready

from .test_pipeline import sign_in

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(can_make_hosts() is not None, reason=str(can_make_hosts())),
    pytest.mark.skipif(can_run_servers() is not None, reason=str(can_run_servers())),
]

APP_HOSTS = ("app1", "app2")
SERVICES = {
    "api": "troika_gateway",
    "worker": "troika_gateway.worker",
    "planner": "troika_planner",
    "executor": "troika_executor",
    "reviewer": "troika_reviewer",
}
PORT = 8000  # each app host's API, on its own address


class Reports(ThreadingHTTPServer):
    """The outside world the tool calls reach: counts each report it receives."""

    def __init__(self, host: str) -> None:
        self.received: Counter[str] = Counter()
        self.lock = threading.Lock()
        super().__init__((host, 0), _ReportHandler)

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}/reports"


class _ReportHandler(BaseHTTPRequestHandler):
    server: Reports

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.received[str(body["report"])] += 1
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: object) -> None:
        pass


def step_script(reports_url: str):
    """The executor: posts its report once, then finishes."""

    def decide(request: dict) -> dict:
        prompt = request["messages"][1]["content"]
        if "Tool calls so far in this subtask" in prompt:
            return {"action": "finish", "result": "reported"}
        number = re.search(r"Report number (\d+)", prompt).group(1)
        post = {"method": "POST", "url": reports_url, "json_body": {"report": number}}
        call = {"tool": "http_request", "arguments": post}
        return {"action": "use_tools", "tool_calls": [call]}

    return decide


class Person:
    """Works through whichever API answers; one that stops answering is left."""

    def __init__(self, clients: dict[str, httpx.AsyncClient]) -> None:
        self.clients = clients
        self.headers: dict[str, str] = {}
        self.approved: Counter[str] = Counter()

    async def call(self, method: str, url: str, **kwargs) -> httpx.Response:
        for host, client in list(self.clients.items()):
            try:
                return await client.request(method, url, headers=self.headers, **kwargs)
            except httpx.TransportError:
                del self.clients[host]  # cut off: the other one from now on
        raise AssertionError("no API answers")

    async def create(self, number: int, via: str) -> str:
        client = self.clients[via]
        made = await client.post("/tasks", headers=self.headers,
                                 json={"objective": f"Report number {number}"})  # fmt: skip
        assert made.status_code == 201, made.text
        return made.json()["id"]

    async def approve_waiting(self) -> None:
        for waiting in (await self.call("GET", "/interactions/pending")).json():
            url = f"/interactions/{waiting['id']}/respond"
            answer = await self.call("POST", url, json={"decision": "approve"})
            if answer.status_code == 200:
                self.approved[waiting["task_id"]] += 1

    async def finished_calls(self, task_id: str) -> int:
        log = (await self.call("GET", f"/tasks/{task_id}/events")).json()["events"]
        return sum(1 for e in log if e["kind"] == "tool.finished")

    async def status(self, task_id: str) -> str:
        return (await self.call("GET", f"/tasks/{task_id}")).json()["status"]


def handled(output: str) -> list[dict]:
    """The messages a service's log says it handled."""
    lines = (json.loads(line) for line in output.splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == "message.handled"]


async def test_a_host_cut_off_mid_run_hands_its_work_to_the_other(
    spawn, tmp_path, bus_prefix, scripted_llm
) -> None:
    with Network(("data", *APP_HOSTS)) as network, HostServers(network, "data") as servers:
        relay = Relay(network.here)  # the scripted model, in this process, to the hosts
        reports = Reports(network.here)
        serving = threading.Thread(target=reports.serve_forever, daemon=True)
        serving.start()
        processes: dict[tuple[str, str], ServiceProcess] = {}
        try:
            llm = llm_env(scripted_llm)
            model = urlsplit(scripted_llm.base_url)
            port = await relay.forward("127.0.0.1", model.port or 0)
            llm["TROIKA_LLM_BASE_URL"] = f"http://{network.here}:{port}{model.path}"
            common = {
                **servers.s3.files_env(await servers.s3.new_bucket()),
                **llm,
                "TROIKA_NATS_URL": servers.nats_url,
                "TROIKA_DATABASE_URL": servers.postgres_url.replace(
                    "postgresql://", "postgresql+asyncpg://", 1
                ),
                "TROIKA_REDIS_URL": servers.redis_url,
                "TROIKA_REDIS_PREFIX": f"{bus_prefix}:",
                "TROIKA_SECRET_KEY": secrets.token_urlsafe(48),
                "TROIKA_PASSWORD_TIME_COST": "1",
                "TROIKA_PASSWORD_MEMORY_KIB": "8192",
                "TROIKA_ACK_WAIT_S": "5",
                "TROIKA_DATABASE_DEAD_CLIENT_S": "5",
                "TROIKA_OUTBOUND_ALLOW_HOSTS": json.dumps(
                    [f"{network.here}:{reports.server_address[1]}"]
                ),
            }
            for host in APP_HOSTS:
                for service, module in SERVICES.items():
                    processes[host, service] = spawn(
                        module, name=f"{host}-{service}", within=network.on(host), **common,
                        TROIKA_DATA_DIR=str(tmp_path / host / service),
                        TROIKA_GATEWAY_HOST=network.address(host), TROIKA_GATEWAY_PORT=str(PORT),
                    )  # fmt: skip
            urls = {host: f"http://{network.address(host)}:{PORT}" for host in APP_HOSTS}
            for url in urls.values():
                await gateway_ready(url)
            await run_and_cut(network, urls, reports, scripted_llm)
            # What app1 had in hand when it was cut off was delivered again, to app2.
            moved = [line for (host, _), process in processes.items() if host == "app2"
                     for line in handled(process.output()) if line["delivery"] > 1]  # fmt: skip
            assert moved, "app1 held no work when it was cut off"
        finally:
            for (host, _), process in processes.items():
                if host == "app1":
                    process.kill()  # cut off: it would wait for servers it cannot reach
            reports.shutdown()
            reports.server_close()
            await relay.close()


async def run_and_cut(network: Network, urls: dict[str, str], reports: Reports, llm) -> None:
    llm.always("PlanDraft", plan_answer(("report", [], ["http_request"])))
    llm.always("StepDecision", step_script(reports.url))
    llm.always("ReviewDecision", {"verdict": "approve", "summary": "Reported."})
    llm.delay(0.5)  # each answer takes a while: work is in the agents' hands when the host goes
    # A cut-off host answers nothing: its requests end at the timeout, a busy one's do not.
    timeout = scaled(3)
    clients = {host: httpx.AsyncClient(base_url=url, timeout=timeout) for host, url in urls.items()}
    person = Person(dict(clients))
    try:
        person.headers = await sign_in(clients["app1"])
        first = [await person.create(n, APP_HOSTS[n % 2]) for n in range(10)]

        async def all_reported() -> bool:
            await person.approve_waiting()
            done = [await person.finished_calls(task_id) for task_id in first]
            return all(n == 1 for n in done)

        await wait_for(all_reported, timeout=90, what="the first ten reports")
        second = [await person.create(n, APP_HOSTS[n % 2]) for n in range(10, 20)]
        network.cut("app1")  # plans, steps and reviews are on their way on both hosts

        statuses: dict[str, str] = {}

        async def all_completed() -> bool:
            await person.approve_waiting()
            statuses.update(
                {task_id: await person.status(task_id) for task_id in (*first, *second)}
            )
            assert not {"failed", "needs_guidance", "cancelled"} & set(statuses.values()), statuses
            return all(status == "completed" for status in statuses.values())

        try:
            await wait_for(all_completed, timeout=120, what="every task to complete on app2")
        except (TimeoutError, AssertionError):
            for task_id, status in statuses.items():
                if status != "completed":
                    log = (await person.call("GET", f"/tasks/{task_id}/events")).json()["events"]
                    print(task_id, status, [(e["kind"], e["data"]) for e in log[-6:]])  # noqa: T201
            raise
        assert list(person.clients) == ["app2"]  # app1 answered no more
        # Every report arrived once: no call ran twice, none was lost.
        assert reports.received == Counter({str(n): 1 for n in range(20)})
        assert all(person.approved[task_id] == 1 for task_id in (*first, *second))
    finally:
        await asyncio.gather(*(client.aclose() for client in clients.values()))
