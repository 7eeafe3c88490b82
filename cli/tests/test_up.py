"""``troika up``: the whole system on one machine, started, checked and stopped as a user would."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest

from troika_shared.settings import shown
from troika_testkit import scaled
from troika_testkit.ports import free_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# a whole system at a time, on a worker of their own with the benchmark (see tests/conftest.py)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("up")]

COMPONENTS = ("nats", "valkey", "llm", "gateway", "worker", "planner", "executor", "reviewer")


def troika_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """``troika up``'s environment; without the web app, whose build is slow, unless asked."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TROIKA_")}
    env.update({"TROIKA_DATA_DIR": str(data_dir), "TROIKA_WEB": "false", "PYTHONUNBUFFERED": "1"})
    env["TROIKA_READY_TIMEOUT_S"] = str(scaled(180))  # its own wait, as long as on a quiet machine
    env.update(extra)
    return env


def _stat(pid: int) -> tuple[str, int] | None:
    """A live process's state and parent, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _environ(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "environ").read_bytes().replace(b"\0", b"\n").decode()
    except OSError:
        return ""


def descendants(root: int) -> set[int]:
    """Every live process below ``root``."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) and stat[0] != "Z":
            parents[int(entry.name)] = stat[1]
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def wait_gone(pids: set[int], timeout: float = 15) -> set[int]:
    """Waits for the processes to end (``timeout`` seconds on a quiet machine); returns those
    still alive."""
    deadline = time.monotonic() + scaled(timeout)

    def alive() -> set[int]:
        return {pid for pid in pids if (stat := _stat(pid)) and stat[0] != "Z"}

    while (left := alive()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def status_rows(output: str) -> dict[str, str]:
    rows = {}
    for line in output.splitlines():
        match = re.match(r"^  (\w+)\s+(ready|NOT READY)\s", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def can_listen_on(port: int) -> bool:
    """Whether a new server could listen on the port now, as uvicorn would (SO_REUSEADDR)."""
    with socket.socket() as probe:
        # closed connections may linger in TIME_WAIT; only a socket still listening keeps the port
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            return False
        return True


def open_to_others(root: Path) -> list[str]:
    """What under ``root`` (itself included) someone other than its owner may read, write or
    enter, with its mode."""
    found = []
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        if not stat.S_ISLNK(info.st_mode) and stat.S_IMODE(info.st_mode) & 0o077:
            found.append(f"{path.relative_to(root)} {oct(stat.S_IMODE(info.st_mode))}")
    return found


def run_check(
    data_dir: Path, port: int, *args: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "troika", "up", "--check", "--port", str(port), *args],
        env=troika_env(data_dir, **extra),
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=scaled(90),
        check=False,
    )


def test_up_check_starts_everything_reports_ready_and_stops(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    port = free_port()
    result = run_check(data_dir, port)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Troika is ready." in result.stdout
    assert status_rows(result.stdout) == dict.fromkeys(COMPONENTS, "ready")
    assert "Permissions Violation" not in result.stdout  # each agent's NATS user has enough
    # no model is configured, so the small local one serves, and the person is told what it is
    assert "local model SmolLM2-135M-Instruct" in result.stdout
    assert "it plans poorly" in result.stdout
    assert (data_dir / "nats" / "jetstream").is_dir()  # the embedded servers keep their data here
    # The database, the keys and the servers' data are the owner's alone, whatever the umask.
    assert (data_dir / "troika.db").is_file()
    assert open_to_others(data_dir) == []
    assert not [pid for pid in descendants(1) if str(data_dir).encode() in _cmdline(pid)]
    assert can_listen_on(port)  # the gateway let go of its port


def test_up_uses_servers_that_are_already_configured(
    tmp_path: Path, nats_url: str, redis_url: str, bus_prefix: str
) -> None:
    data_dir = tmp_path / "var"
    result = run_check(
        data_dir,
        free_port(),
        "--no-web",  # the option wins over the variable
        TROIKA_WEB="true",
        TROIKA_NATS_URL=nats_url,
        TROIKA_REDIS_URL=redis_url,
        TROIKA_BUS_PREFIX=bus_prefix,
        TROIKA_LLM_BASE_URL="http://127.0.0.1:9/v1",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "plans poorly" not in result.stdout  # a configured endpoint: no local model
    rows = status_rows(result.stdout)
    assert rows == dict.fromkeys(
        ("nats", "redis", "gateway", "worker", "planner", "executor", "reviewer"), "ready"
    )
    assert shown(nats_url) in result.stdout  # the address, without a password in it
    if password := urlsplit(nats_url).password:
        assert password not in result.stdout + result.stderr
    assert not (data_dir / "nats").exists()
    assert not (data_dir / "valkey").exists()


def test_a_taken_port_is_reported_plainly(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_check(tmp_path / "var", port)
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is already in use" in result.stderr
    assert "--port" in result.stderr


def test_a_taken_web_port_is_reported_plainly(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_check(
            tmp_path / "var", free_port(), "--web-port", str(port), TROIKA_WEB="true"
        )
        same = run_check(
            tmp_path / "var", free_port(), TROIKA_WEB="true", TROIKA_WEB_PORT=str(port)
        )
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is already in use; " in result.stderr
    assert "--web-port or TROIKA_WEB_PORT" in result.stderr
    assert same.returncode == 1
    assert f"127.0.0.1:{port} is already in use; " in same.stderr
    assert not (tmp_path / "var").exists()  # nothing was started


def test_the_web_app_and_the_gateway_cannot_share_a_port(tmp_path: Path) -> None:
    port = free_port()
    result = run_check(tmp_path / "var", port, "--web-port", str(port), TROIKA_WEB="true")
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is already in use by the gateway" in result.stderr
    assert "--web-port" in result.stderr


@pytest.fixture
def start_up() -> Iterator[Callable[..., tuple[subprocess.Popen[str], str]]]:
    """Starts ``troika up`` with these arguments and waits until it says it is ready; returns
    the process and what it printed until then."""
    started: list[tuple[subprocess.Popen[str], set[int]]] = []

    def start(data_dir: Path, *args: str, **extra: str) -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "troika", "up", "--port", str(free_port()), *args],
            env=troika_env(data_dir, **extra),
            cwd=data_dir.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        entry: tuple[subprocess.Popen[str], set[int]] = (process, set())
        started.append(entry)
        assert process.stdout is not None
        seen = []
        for line in process.stdout:
            seen.append(line)
            if "(Ctrl+C stops everything)" in line:
                entry[1].update(descendants(process.pid))
                return process, "".join(seen)
        pytest.fail("troika up ended before it was ready:\n" + "".join(seen))

    yield start
    for process, children in started:  # whatever a failed test left running
        process.kill()
        process.communicate()
        for pid in wait_gone(children, timeout=5):
            os.kill(pid, signal.SIGKILL)


def test_ctrl_c_stops_every_process(tmp_path: Path, start_up) -> None:
    data_dir = tmp_path / "var"
    process, _ = start_up(data_dir, "--replicas", "2")
    children = descendants(process.pid)
    assert len(children) == 2 + 1 + 2 + 3 * 2  # nats, valkey, llm, gateway, worker, 2 per agent
    # Only the gateway's processes hold the secret key; the executor gets the derived keys.
    secret = (data_dir / "secret_key").read_text().strip()
    holders = {_cmdline(pid).split(b"\0")[2].decode() for pid in children
               if f"TROIKA_SECRET_KEY={secret}" in _environ(pid)}  # fmt: skip
    assert holders == {"troika_gateway", "troika_gateway.worker"}
    executors = [pid for pid in children if b"troika_executor" in _cmdline(pid)]
    assert all("TROIKA_APPROVAL_KEY=" in _environ(pid) for pid in executors)
    # Each process gets only the settings it reads: Redis is the gateway's, not the agents'.
    agents = [pid for pid in children if re.search(rb"troika_(planner|executor|reviewer)\b",
                                                   _cmdline(pid))]  # fmt: skip
    assert len(agents) == 6
    assert all("TROIKA_REDIS_URL=" not in _environ(pid) for pid in agents)
    assert all("TROIKA_NATS_URL=" in _environ(pid) for pid in agents)
    gateways = [pid for pid in children if _cmdline(pid).split(b"\0")[2] == b"troika_gateway"]
    assert all("TROIKA_REDIS_URL=" in _environ(pid) for pid in gateways)
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=scaled(30))
    assert process.returncode == 0, rest
    assert "Stopped." in rest
    left = wait_gone(children)
    assert left == set(), [_cmdline(pid) for pid in left]


def test_killing_troika_up_leaves_no_process_behind(tmp_path: Path, start_up) -> None:
    data_dir = tmp_path / "var"
    process, _ = start_up(data_dir, "--replicas", "2")
    children = descendants(process.pid)
    assert len(children) == 2 + 1 + 2 + 3 * 2
    process.kill()
    process.communicate(timeout=scaled(10))
    left = wait_gone(children)
    assert left == set(), [_cmdline(pid) for pid in left]


def test_up_makes_a_private_secret_key_once_and_keeps_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    assert run_check(data_dir, free_port()).returncode == 0
    key_file = data_dir / "secret_key"
    key = key_file.read_text()
    assert len(key.strip()) >= 32
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert run_check(data_dir, free_port()).returncode == 0
    assert key_file.read_text() == key
    assert (data_dir / "troika.db").is_file()  # the gateway's database, migrated at start


@pytest.mark.timeout(400)  # the first start on a machine fetches the web app's packages from npm
def test_up_serves_the_web_app_and_stops_it(tmp_path: Path, start_up) -> None:
    data_dir = tmp_path / "var"
    web_port = free_port()
    process, printed = start_up(data_dir, "--web-port", str(web_port), TROIKA_WEB="true")
    url = f"http://127.0.0.1:{web_port}"
    assert status_rows(printed)["web"] == "ready"
    assert f"Open {url} in your browser." in printed
    children = descendants(process.pid)
    # The web app talks to the gateway's API alone: it holds no key and no bus or LLM setting.
    secret = (data_dir / "secret_key").read_text().strip()
    web = [pid for pid in children if f"TROIKA_WEB_PORT={web_port}" in _environ(pid)]
    assert web  # the web app's processes (Reflex's server and what it runs)
    for pid in web:
        environ = _environ(pid)
        assert f"TROIKA_SECRET_KEY={secret}" not in environ
        assert "TROIKA_NATS_URL=" not in environ
        assert "TROIKA_LLM_" not in environ

    page = httpx.get(url, timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<html" in page.text.lower()
    assert httpx.get(f"{url}/ping", timeout=10).status_code == 200

    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=scaled(60))
    assert process.returncode == 0, rest
    assert "Stopped." in rest
    left = wait_gone(children)
    assert left == set(), [_cmdline(pid) for pid in left]
    assert can_listen_on(web_port)  # the web app let go of its port


HAIKU = "Write a haiku about message queues and save it to haiku.txt"


def gateway_url(printed: str) -> str:
    """The gateway's address from ``troika up``'s status table."""
    found = re.search(r"gateway\s+ready\s+(http://\S+)", printed)
    assert found, printed
    return found.group(1)


def signed_up(http: httpx.Client) -> dict[str, str]:
    """Signs a new person up and in; returns the headers of their requests."""
    person = {"email": "ada@example.com", "username": "ada", "password": "a long passphrase"}
    assert http.post("/auth/register", json=person).status_code == 201
    login = http.post("/auth/login", json={"login": "ada", "password": person["password"]})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def test_a_context_too_small_for_the_local_model_is_told_plainly(tmp_path: Path, start_up) -> None:
    # The embedded model, given a context smaller than a plan request: the task pauses with
    # what to change, and nothing too long is sent to the model.
    _, printed = start_up(tmp_path / "var", TROIKA_LLM_CONTEXT_TOKENS="700")
    with httpx.Client(base_url=gateway_url(printed), timeout=10) as http:
        headers = signed_up(http)
        task = http.post("/tasks", headers=headers, json={"objective": HAIKU}).json()
        deadline = time.monotonic() + scaled(60)
        while (seen := http.get(f"/tasks/{task['id']}", headers=headers).json())["status"] in (
            "queued", "planning"
        ) and time.monotonic() < deadline:  # fmt: skip
            time.sleep(0.2)
    assert seen["status"] == "needs_guidance", seen
    reason = seen["status_reason"]
    assert re.search(r"needs about [\d,]+ tokens and the model takes 700", reason), reason
    assert "TROIKA_LLM_CONTEXT_TOKENS" in reason
    assert "unusable" not in reason  # the setup's problem, not the model's answer


@pytest.mark.timeout(360)  # the model runs on the CPU, beside the rest of the suite
def test_a_first_task_on_the_local_model_ends_plainly(tmp_path: Path, start_up) -> None:
    # `make run`'s defaults: the embedded model, nothing configured. The person approves
    # every call; the task completes, or pauses once saying the local model is too small.
    # (A budget of a few steps keeps it short: the model answers in seconds, not instantly.)
    # One core for the model: the rest of the suite runs beside it.
    process, printed = start_up(tmp_path / "var", TROIKA_LLM_THREADS="1")
    with httpx.Client(base_url=gateway_url(printed), timeout=30) as http:
        headers = signed_up(http)
        fields = {"objective": HAIKU, "budget": {"max_steps": 4}}
        task = http.post("/tasks", headers=headers, json=fields).json()
        deadline = time.monotonic() + scaled(300)
        while time.monotonic() < deadline:
            pending = http.get(
                "/interactions/pending", headers=headers, params={"task_id": task["id"]}
            )
            for ask in pending.json():
                answer = http.post(
                    f"/interactions/{ask['id']}/respond", headers=headers,
                    json={"decision": "approve"},
                )  # fmt: skip
                assert answer.status_code < 500, answer.text  # 409: settled; 400: needs a form
            seen = http.get(f"/tasks/{task['id']}", headers=headers).json()
            if seen["status"] in ("completed", "needs_guidance", "failed", "cancelled"):
                break
            time.sleep(1)
        events = http.get(f"/tasks/{task['id']}/events", headers=headers).json()["events"]
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=scaled(60))
    assert seen["status"] in ("completed", "needs_guidance"), seen
    if seen["status"] == "needs_guidance":
        [paused] = [e for e in events if e["kind"] == "task.needs_guidance"]  # said once
        after = [e["kind"] for e in events if e["seq"] > paused["seq"]]
        assert not {"plan.requested", "step.requested", "review.requested"} & set(after)
        if paused["data"]["evidence"]["rule"] in ("unusable_answers", "same_call"):
            assert "the local model (SmolLM2-135M" in seen["status_reason"]
            assert "is too small for this step" in seen["status_reason"]
    assert "Traceback" not in rest
    assert "message.failed" not in rest
    assert "Permissions Violation" not in rest  # each agent's NATS user had what it needed
    assert open_to_others(tmp_path / "var") == []  # the task's folder and all
