"""The ``run_python`` sandbox on real processes: what the code can do, and what it cannot reach.

Most tests run under both isolations: "namespaces" (skipped where this machine cannot create
them) and "basic", the fallback the sandbox uses where it cannot.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import pwd
import stat
import subprocess
import sys
import textwrap
import time
import uuid
from ast import literal_eval
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from troika_executor import sandbox as sandbox_module
from troika_executor import sandbox_processes
from troika_executor.sandbox import (
    DEEPEST,
    MOST_FILES,
    ProcessesLeft,
    Sandbox,
    SandboxLimits,
    SandboxUnavailable,
    WorkspaceTooLarge,
)
from troika_executor.workspace import Workspace
from troika_testkit import scaled

TASK = "task-1"
SLOTS = 4
# A uid range of this test process's own: another test run on the host sweeps only its own uids.
UID_BASE = 62_100 + SLOTS * (os.getpid() % 500)
UIDS = range(UID_BASE, UID_BASE + SLOTS)
ROOT = os.geteuid() == 0
SECRET = "s3cret-key-8c1f0e"
SALES = "region,amount\nNorth,120.5\nSouth,80\nNorth,30\n"
QUICK = SandboxLimits(timeout_s=20)

# Shared folders the code might write to; the test checks that nothing it writes lands there.
STRAY_FOLDERS = ("/tmp", "/dev/shm", "/var/tmp")  # noqa: S108

needs_root = pytest.mark.skipif(not ROOT, reason="a uid per run needs the executor to be root")


@pytest.fixture
def data_dir(tmp_path):
    data = tmp_path / "data"
    (data / "workspaces" / "other-task").mkdir(parents=True)
    (data / "workspaces" / "other-task" / "notes.txt").write_text("another task's notes")
    (data / "secret.txt").write_text("top-secret-content")
    return data


@pytest.fixture
def workspace(data_dir):
    workspace = Workspace(data_dir, TASK)
    workspace.root.mkdir(parents=True)
    (workspace.root / "sales.csv").write_text(SALES)
    ledger = workspace.root / ".calls"
    ledger.mkdir()
    (ledger / "call-1.json").write_text('{"ledger": "private"}')
    return workspace


def make_sandbox(data_dir: Path, mode: str) -> Sandbox:
    sandbox = Sandbox(data_dir, uid_base=UID_BASE, slots=SLOTS, mode=mode)
    try:
        assert sandbox.isolation == mode
    except SandboxUnavailable:
        pytest.skip("this machine cannot create namespaces")
    return sandbox


@pytest.fixture(params=["namespaces", "basic"])
def sandbox(request, data_dir):
    return make_sandbox(data_dir, request.param)


@pytest.fixture
def jailed(data_dir):
    return make_sandbox(data_dir, "namespaces")


@pytest.fixture
def basic(data_dir):
    return make_sandbox(data_dir, "basic")


def unprivileged(data_dir: Path, mode: str) -> Sandbox:
    """A sandbox that behaves as under an executor that is not root: the code keeps the
    executor's uid (here root's, without its capabilities)."""
    sandbox = Sandbox(data_dir, uid_base=UID_BASE, slots=SLOTS, mode=mode)
    sandbox._privileged = False
    try:
        assert sandbox.isolation == mode
    except SandboxUnavailable:
        pytest.skip("this machine cannot create namespaces")
    return sandbox


@pytest.fixture
def scratch_parent(tmp_path, monkeypatch) -> Path:
    """The folder scratch folders are made in, to tell that they were removed."""
    parent = tmp_path / "scratch"
    parent.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(parent))
    return parent


def live_processes() -> list[tuple[int, int, bytes]]:
    """(pid, real uid, command line) of each process that is not a zombie."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields["State"].split()[0] not in ("Z", "X"):
            found.append((int(entry.name), int(fields["Uid"].split()[0]), command))
    return found


def leftovers(marker: str = "") -> list[int]:
    """Processes of the sandbox's uids, or whose command line holds ``marker``."""
    return [
        pid
        for pid, uid, command in live_processes()
        if pid != os.getpid()
        and ((ROOT and uid in UIDS) or (marker and marker.encode() in command))
    ]


def strays(name: str) -> list[Path]:
    return [Path(folder, name) for folder in STRAY_FOLDERS if Path(folder, name).exists()]


async def wait_for_processes(marker: str = "") -> None:
    deadline = time.monotonic() + scaled(15)
    while not leftovers(marker):
        assert time.monotonic() < deadline, "the sandboxed code never started"
        await asyncio.sleep(0.02)


async def test_prints_what_it_computes(sandbox, workspace) -> None:
    result = await sandbox.run(workspace, "print(sum(range(10)))", QUICK)
    assert (result.stdout, result.stderr, result.exit_code) == ("45\n", "", 0)
    assert (result.timed_out, result.signal, result.changed_files) == (False, None, ())
    assert result.isolation == sandbox.isolation


async def test_it_runs_under_the_executors_private_umask(sandbox, workspace) -> None:
    # The executor creates everything 0600/0700 (troika_shared.private); the code's own uid
    # must still reach what it needs, and find the task's files.
    (workspace.root / "in.txt").write_text("21")
    previous = os.umask(0o077)
    try:
        code = (  # glob and json are read from the standard library's files, not frozen
            "import glob, json\n"
            "n = json.loads(open(glob.glob('in.*')[0]).read())\n"
            "open('out.txt', 'w').write(str(n * 2))"
        )
        result = await sandbox.run(workspace, code, QUICK)
    finally:
        os.umask(previous)
    assert (result.exit_code, result.stderr) == (0, "")
    assert (workspace.root / "out.txt").read_text() == "42"


async def test_an_exception_gives_its_traceback_and_exit_status_1(sandbox, workspace) -> None:
    code = "def total(rows):\n    raise ValueError('no rows')\n\ntotal([])\n"
    result = await sandbox.run(workspace, code, QUICK)
    assert result.exit_code == 1
    assert result.stderr.startswith("Traceback (most recent call last):\n")
    assert 'File "<task code>", line 4, in <module>' in result.stderr
    assert "raise ValueError('no rows')" in result.stderr
    assert result.stderr.endswith("ValueError: no rows\n")
    assert "troika_executor" not in result.stderr  # the jail's own frames are left out


async def test_the_jail_loads_only_the_standard_library_before_the_code(sandbox, workspace) -> None:
    # What the jail imports delays every run: troika_shared's package alone loads the bus client.
    code = "import sys\nprint(sorted({name.split('.')[0] for name in sys.modules}))"
    result = await sandbox.run(workspace, code, QUICK)
    assert result.exit_code == 0, result.stderr
    loaded = set(literal_eval(result.stdout)) - sys.stdlib_module_names
    assert loaded == {"__main__", "troika_executor"}


async def test_syntax_errors_and_exit_statuses_are_the_codes_own(sandbox, workspace) -> None:
    broken = await sandbox.run(workspace, "print('unclosed'", QUICK)
    assert broken.exit_code == 1
    assert "SyntaxError" in broken.stderr
    exited = await sandbox.run(workspace, "import sys\nprint('bye')\nsys.exit(3)", QUICK)
    assert (exited.exit_code, exited.stdout) == (3, "bye\n")
    message = await sandbox.run(workspace, "raise SystemExit('nothing to do')", QUICK)
    assert (message.exit_code, message.stderr) == (1, "nothing to do\n")


async def test_pandas_reads_an_upload_and_its_output_lands_in_the_workspace(
    sandbox, workspace
) -> None:
    code = """
import os
import pandas as pd
sales = pd.read_csv("sales.csv")
sales.groupby("region", as_index=False)["amount"].sum().to_csv("out.csv", index=False)
print(sorted(os.listdir(".")))
print("ledger visible:", os.path.exists(".calls") or os.path.exists(".calls/call-1.json"))
"""
    result = await sandbox.run(workspace, code, QUICK)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "['out.csv', 'sales.csv']\nledger visible: False\n"
    assert result.changed_files == ("out.csv",)
    out = list(csv.DictReader(io.StringIO((workspace.root / "out.csv").read_text())))
    assert out == [{"region": "North", "amount": "150.5"}, {"region": "South", "amount": "80.0"}]
    assert (workspace.root / "sales.csv").read_text() == SALES
    assert (workspace.root / ".calls" / "call-1.json").read_text() == '{"ledger": "private"}'


async def test_only_new_and_changed_files_come_back(sandbox, workspace) -> None:
    (workspace.root / "notes").mkdir()
    (workspace.root / "notes" / "a.txt").write_text("aaaa")
    (workspace.root / "notes" / "b.txt").write_text("bbbb")
    code = """
import os
from pathlib import Path
Path("notes/a.txt").write_text("AAAA")        # same size, other content
Path("notes/b.txt").write_text("bbbb")        # rewritten, same content
Path("report/2024").mkdir(parents=True)
Path("report/2024/summary.md").write_text("# Summary")
Path(".hidden").write_text("not for the workspace")
Path("__pycache__").mkdir()
Path("__pycache__/x.pyc").write_bytes(b"x")
try:
    os.symlink("/etc/passwd", "passwd-link")
except PermissionError:
    pass  # "basic" isolation refuses links that lead out of the scratch folder
"""
    result = await sandbox.run(workspace, code, QUICK)
    assert result.exit_code == 0, result.stderr
    assert result.changed_files == ("notes/a.txt", "report/2024/summary.md")
    assert (workspace.root / "notes" / "a.txt").read_text() == "AAAA"
    assert (workspace.root / "report" / "2024" / "summary.md").read_text() == "# Summary"
    for absent in (".hidden", "__pycache__", "passwd-link"):
        assert not (workspace.root / absent).exists()
    assert sorted(p.name for p in workspace.root.iterdir()) == [
        ".calls",
        "notes",
        "report",
        "sales.csv",
    ]


async def test_the_executors_environment_stays_out_of_reach(
    sandbox, workspace, monkeypatch
) -> None:
    monkeypatch.setenv("TROIKA_SECRET_KEY", SECRET)
    code = """
import glob, os
print(dict(os.environ))
for path in [f"/proc/{os.getppid()}/environ", *glob.glob("/proc/*/environ")]:
    try:
        print(path, open(path, "rb").read())
    except Exception as error:
        print(path, "refused:", type(error).__name__)
"""
    result = await sandbox.run(workspace, code, QUICK)
    assert result.exit_code == 0, result.stderr
    assert "'HOME': '/tmp/troika-sandbox-" in result.stdout  # the code did run and look
    assert SECRET not in result.stdout + result.stderr
    assert "TROIKA_SECRET_KEY" not in result.stdout + result.stderr


async def test_the_code_cannot_reach_the_network(sandbox, workspace) -> None:
    connections = 0

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    code = f"""
import socket, time
for host, port in [("127.0.0.1", {port}), ("10.0.0.1", 80), ("example.com", 443)]:
    started = time.monotonic()
    try:
        socket.create_connection((host, port), timeout=10).close()
        print(host, "connected")
    except OSError as error:
        print(host, "failed:", type(error).__name__, round(time.monotonic() - started, 1))
"""
    try:
        started = time.monotonic()
        result = await sandbox.run(workspace, code, QUICK)
    finally:
        server.close()
        await server.wait_closed()
    assert result.exit_code == 0, result.stderr
    assert "connected" not in result.stdout
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [
        ["127.0.0.1", "failed:"],
        ["10.0.0.1", "failed:"],
        ["example.com", "failed:"],
    ]
    assert connections == 0
    assert time.monotonic() - started < 5  # refused at once, not after a connect timeout


async def test_the_network_namespace_stops_even_raw_system_calls(jailed, workspace) -> None:
    connections = 0

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # ctypes goes around the audit hook: only the namespace stands in the way.
    code = f"""
import ctypes, socket, struct
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
address = struct.pack("=H", socket.AF_INET) + struct.pack("!H", {port})
address += socket.inet_aton("127.0.0.1") + bytes(8)
result = libc.connect(fd, address, len(address))
print(fd >= 0, result, ctypes.get_errno())
print(open("/proc/net/dev").read().split("\\n")[2:])
"""
    try:
        result = await jailed.run(workspace, code, QUICK)
    finally:
        server.close()
        await server.wait_closed()
    assert result.exit_code == 0, result.stderr
    opened, connected, error = result.stdout.splitlines()[0].split()
    assert (opened, connected, int(error)) == ("True", "-1", 101)  # ENETUNREACH: lo is down
    assert result.stdout.splitlines()[1].startswith("['    lo:")  # the only interface
    assert connections == 0


async def test_basic_isolation_refuses_processes_signals_and_ctypes(basic, workspace) -> None:
    code = """
import os, signal, subprocess
attempts = {
    "fork": os.fork,
    "subprocess": lambda: subprocess.run(["true"]),
    "system": lambda: os.system("true"),
    "kill": lambda: os.kill(os.getppid(), signal.SIGTERM),
    "ctypes": lambda: __import__("ctypes").CDLL(None),
}
for name, attempt in attempts.items():
    try:
        attempt()
        print(name, "allowed")
    except PermissionError:
        print(name, "refused")
"""
    result = await basic.run(workspace, code, QUICK)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == [
        "fork",
        "refused",
        "subprocess",
        "refused",
        "system",
        "refused",
        "kill",
        "refused",
        "ctypes",
        "refused",
    ]


@pytest.mark.slow
async def test_a_fork_bomb_is_contained_and_leaves_nothing_behind(jailed, workspace) -> None:
    limits = SandboxLimits(timeout_s=5, processes=16)
    result = await jailed.run(workspace, "import os\nwhile True:\n    os.fork()\n", limits)
    assert result.timed_out or result.exit_code != 0
    assert "BlockingIOError" in result.stderr or result.timed_out
    assert leftovers() == []
    after = await jailed.run(workspace, "print('still fine')", QUICK)
    assert (after.exit_code, after.stdout) == (0, "still fine\n")


async def test_allocating_10_gb_fails_with_memory_error(sandbox, workspace) -> None:
    code = "b = bytearray(10 * 1024**3)\nprint('allocated')"
    result = await sandbox.run(workspace, code, QUICK)
    assert result.exit_code == 1
    assert result.signal is None
    assert "allocated" not in result.stdout
    assert result.stderr.rstrip().endswith("MemoryError")
    after = await sandbox.run(workspace, "print('still fine')", QUICK)
    assert after.stdout == "still fine\n"


async def test_a_file_over_the_size_limit_is_stopped(sandbox, workspace) -> None:
    code = """
chunk = b"x" * 1024 * 1024
with open("big.bin", "wb") as out:
    for _ in range(1024):
        out.write(chunk)
print("wrote 1 GB")
"""
    result = await sandbox.run(workspace, code, SandboxLimits(timeout_s=20, file_mb=8))
    assert result.exit_code == 1
    assert "wrote 1 GB" not in result.stdout
    assert "File too large" in result.stderr  # EFBIG
    big = workspace.root / "big.bin"
    assert not big.exists() or big.stat().st_size <= 8 * 1024 * 1024


@pytest.mark.slow
async def test_nothing_outlives_the_timeout(sandbox, workspace) -> None:
    marker = f"troika-test-{uuid.uuid4().hex}"
    code = f"""
import subprocess, sys, time
try:
    subprocess.Popen(
        [sys.executable, "-c", "import os, time; os.setsid(); time.sleep(600)", "{marker}"],
        start_new_session=True,
    )
    print("child started", flush=True)
except PermissionError:
    print("child refused", flush=True)
time.sleep(600)
"""
    started = time.monotonic()
    result = await sandbox.run(workspace, code, SandboxLimits(timeout_s=2))
    assert time.monotonic() - started < 2 + scaled(6)  # not the 600 s the code asked for
    assert (result.timed_out, result.exit_code, result.signal) == (True, None, "SIGKILL")
    expected = "child started" if sandbox.isolation == "namespaces" else "child refused"
    assert result.stdout == f"{expected}\n"
    assert leftovers(marker) == []


async def test_the_data_directory_is_out_of_sight(sandbox, workspace, data_dir) -> None:
    code = f"""
import os
for path in [{str(data_dir / "secret.txt")!r},
             {str(data_dir / "workspaces" / "other-task" / "notes.txt")!r}]:
    try:
        print(open(path).read())
    except OSError as error:
        print("refused:", type(error).__name__)
try:
    print(os.listdir({str(data_dir)!r}))
except OSError as error:
    print("refused:", type(error).__name__)
"""
    result = await sandbox.run(workspace, code, QUICK)
    assert result.exit_code == 0, result.stderr
    assert "top-secret-content" not in result.stdout
    assert "another task's notes" not in result.stdout
    assert "secret.txt" not in result.stdout
    assert result.stdout.count("refused:") == 3


@pytest.mark.slow
async def test_cancelling_the_run_kills_the_process_tree(sandbox, workspace) -> None:
    marker = f"troika-test-{uuid.uuid4().hex}"
    code = f"""
import subprocess, sys, time
try:
    subprocess.Popen(
        [sys.executable, "-c", "import os, time; os.setsid(); time.sleep(600)", "{marker}"]
    )
except PermissionError:
    pass
time.sleep(600)
"""
    run = asyncio.ensure_future(sandbox.run(workspace, code, SandboxLimits(timeout_s=60)))
    await wait_for_processes(marker if sandbox.isolation == "namespaces" else "")
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert leftovers(marker) == []


async def test_output_is_capped_with_a_marker(sandbox, workspace) -> None:
    limits = SandboxLimits(timeout_s=20, output_chars=1000)
    code = "import sys\nprint('x' * 1_000_000)\nprint('é' * 3000, file=sys.stderr)"
    result = await sandbox.run(workspace, code, limits)
    assert result.exit_code == 0
    assert result.stdout == "x" * 1000 + "\n[truncated: 999001 more characters]"
    assert result.stderr == "é" * 1000 + "\n[truncated: 2001 more characters]"


@pytest.mark.slow
async def test_cpu_time_is_limited(sandbox, workspace) -> None:
    result = await sandbox.run(
        workspace, "while True:\n    pass\n", SandboxLimits(timeout_s=20, cpu_s=1)
    )
    assert (result.exit_code, result.signal, result.timed_out) == (None, "SIGXCPU", False)


@needs_root
async def test_concurrent_runs_get_uids_of_their_own(sandbox, workspace) -> None:
    code = "import os, time\ntime.sleep(0.3)\nprint(os.getuid(), os.getgid(), os.getgroups())"
    runs = await asyncio.gather(*(sandbox.run(workspace, code, QUICK) for _ in range(3)))
    ids = [run.stdout.split(maxsplit=2) for run in runs]
    assert all(uid == gid and int(uid) in UIDS and rest == "[]\n" for uid, gid, rest in ids)
    assert len({uid for uid, _, _ in ids}) == 3


async def test_a_workspace_over_the_copy_limit_is_refused(sandbox, workspace) -> None:
    (workspace.root / "large.bin").write_bytes(bytes(2 * 1024 * 1024))
    with pytest.raises(WorkspaceTooLarge) as refused:
        await sandbox.run(workspace, "print('hi')", SandboxLimits(copy_in_mb=1))
    assert refused.value.limit_bytes == 1024 * 1024
    assert refused.value.size_bytes > 2 * 1024 * 1024


async def test_links_in_the_workspace_are_not_followed_in(sandbox, workspace, data_dir) -> None:
    (workspace.root / "secret-link.txt").symlink_to(data_dir / "secret.txt")
    code = "import os\nprint(sorted(os.listdir('.')))"
    result = await sandbox.run(workspace, code, QUICK)
    assert result.stdout == "['sales.csv']\n"


async def test_many_files_under_the_size_limit_stop_at_the_disk_quota(sandbox, workspace) -> None:
    (workspace.root / "input.bin").write_bytes(b"i" * 6 * 1024 * 1024)  # copied in: not counted
    code = """
import os, time
chunk = b"x" * 1024 * 1024
for n in range(400):  # 400 MB in files of 4 MB: each one within its limit
    with open(f"part-{n}.bin", "wb") as out:
        for _ in range(4):
            out.write(chunk)
    time.sleep(0.01)
print("wrote everything")
"""
    result = await sandbox.run(
        workspace, code, SandboxLimits(timeout_s=60, file_mb=8, disk_mb=16, copy_in_mb=400)
    )
    assert "wrote everything" not in result.stdout
    assert result.overrun == "stopped: the program wrote more than its 16 MB of disk"
    assert result.signal == "SIGKILL"
    assert not result.timed_out
    written = sum(p.stat().st_size for p in workspace.root.glob("part-*.bin"))
    assert 16 * 1024 * 1024 < written < 200 * 1024 * 1024  # stopped soon after the quota


async def test_files_hidden_deep_stop_the_run_too(sandbox, workspace) -> None:
    code = """
import os, time
for _ in range(300):
    os.mkdir("d")
    os.chdir("d")
time.sleep(30)
"""
    result = await sandbox.run(workspace, code, SandboxLimits(timeout_s=60, disk_mb=16))
    assert result.overrun == "stopped: it nested folders more than 256 deep"
    assert not result.timed_out


async def test_a_run_within_its_disk_quota_is_not_stopped(sandbox, workspace) -> None:
    code = 'open("out.bin", "wb").write(b"x" * 4 * 1024 * 1024); print("ok")'
    result = await sandbox.run(workspace, code, SandboxLimits(timeout_s=20, disk_mb=16))
    assert (result.stdout, result.overrun, result.exit_code) == ("ok\n", None, 0)


async def test_files_written_outside_the_scratch_folder_never_reach_the_host(
    sandbox, workspace
) -> None:
    name = f"troika-test-{uuid.uuid4().hex}"
    code = f"""
for folder in {STRAY_FOLDERS!r}:
    try:
        with open(folder + "/{name}", "w") as out:
            out.write("stray")
        print(folder, "written")
    except OSError as error:
        print(folder, "refused:", type(error).__name__)
"""
    result = await sandbox.run(workspace, code, QUICK)
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3
    assert strays(name) == []


async def test_a_scratch_folder_inside_the_data_directory_still_hides_it(
    sandbox, workspace, data_dir, monkeypatch
) -> None:
    temporary = data_dir / "tmp"
    temporary.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(temporary))
    code = f"""
import os
print(os.getcwd().startswith({str(temporary)!r}), sorted(os.listdir(".")))
open("result.txt", "w").write("done")
try:
    print(open({str(data_dir / "secret.txt")!r}).read())
except OSError as error:
    print("refused:", type(error).__name__)
"""
    result = await sandbox.run(workspace, code, QUICK)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "True ['sales.csv']"
    assert result.stdout.splitlines()[1].startswith("refused:")
    assert result.changed_files == ("result.txt",)
    assert list(temporary.iterdir()) == []  # the scratch folder was removed


async def test_auto_refuses_basic_isolation_to_an_executor_that_is_not_root(
    data_dir, workspace, monkeypatch
) -> None:
    monkeypatch.setattr(sandbox_module, "_namespaces_work", lambda: False)
    sandbox = Sandbox(data_dir, uid_base=UID_BASE, slots=SLOTS, mode="auto")
    sandbox._privileged = False
    with pytest.raises(SandboxUnavailable) as refused:
        await sandbox.run(workspace, "open('ran.txt', 'w').write('ran')", QUICK)
    assert "TROIKA_SANDBOX=basic" in refused.value.reason
    assert "namespaces" in str(refused.value)
    assert not (workspace.root / "ran.txt").exists()
    assert sandbox.check() is None  # at the executor's start: logged, not raised


@needs_root
async def test_auto_falls_back_to_basic_as_root_and_seals_the_data_directory(
    data_dir, workspace, monkeypatch
) -> None:
    monkeypatch.setattr(sandbox_module, "_namespaces_work", lambda: False)
    data_dir.chmod(0o755)
    (data_dir / "workspaces").chmod(0o777)
    sandbox = Sandbox(data_dir, uid_base=UID_BASE, slots=SLOTS, mode="auto")
    with capture_logs() as logs:
        assert sandbox.check() == "basic"
    warned = [entry for entry in logs if entry["event"] == "sandbox.basic_isolation"]
    assert [entry["log_level"] for entry in warned] == ["warning"]
    # The code's uid is neither the owner nor in the group: "other" is its only way in.
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o750
    assert stat.S_IMODE((data_dir / "workspaces").stat().st_mode) == 0o770
    result = await sandbox.run(workspace, "print(open('sales.csv').read(6))", QUICK)
    assert (result.exit_code, result.stdout, result.isolation) == (0, "region\n", "basic")


async def test_basic_isolation_refuses_paths_the_guard_would_see_elsewhere(
    data_dir, workspace
) -> None:
    # Audit events do not tell the dir_fd of os.open: a path relative to a folder descriptor
    # must not lead where the guard, resolving it from the working folder, would not look.
    basic = unprivileged(data_dir, "basic")
    secret = str(data_dir / "secret.txt").lstrip("/")
    ledger = str(workspace.root / ".calls" / "call-2.json").lstrip("/")
    other = str(data_dir / "workspaces" / "other-task" / "planted").lstrip("/")
    code = f"""
import os
def attempt(name, action):
    try:
        print(name, action())
    except OSError as error:
        print(name, "refused:", type(error).__name__)
def from_root(path, flags):
    root = os.open("/", os.O_RDONLY)
    return os.read(os.open(path, flags, 0o644, dir_fd=root), 100)
attempt("read", lambda: from_root({secret!r}, os.O_RDONLY))
attempt("write", lambda: from_root({ledger!r}, os.O_RDWR | os.O_CREAT))
attempt("mkdir", lambda: os.mkdir({other!r}, dir_fd=os.open("/", os.O_RDONLY)))
def through_a_link():
    os.mkdir("sub")
    os.symlink({str(data_dir)!r}, "sub/link")
    return os.read(os.open("link/secret.txt", os.O_RDONLY, dir_fd=os.open("sub", 0)), 100)
attempt("link", through_a_link)
def climbing():
    deep = "/".join("d" * 10)
    os.makedirs(deep + "/" + "/".join("e" * 30))
    start = os.open(deep, os.O_RDONLY)
    os.chdir(deep + "/" + "/".join("e" * 30))
    ups = "../" * (os.getcwd().count("/") - 30)
    return os.read(os.open(ups + {secret!r}, os.O_RDONLY, dir_fd=start), 100)
attempt("climb", climbing)
"""
    result = await basic.run(workspace, code, QUICK)
    assert result.exit_code == 0, result.stderr
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [
        ["read", "refused:"],
        ["write", "refused:"],
        ["mkdir", "refused:"],
        ["link", "refused:"],
        ["climb", "refused:"],
    ]
    assert "top-secret-content" not in result.stdout
    assert not (workspace.root / ".calls" / "call-2.json").exists()
    assert not (data_dir / "workspaces" / "other-task" / "planted").exists()


async def test_the_host_is_read_only_to_the_code_whatever_its_uid_may_write(
    data_dir, workspace
) -> None:
    # Not root: the code keeps the executor's uid, which may write to its own files (the
    # virtual environment here: a .pth file there would run in the executor's next start).
    jailed = unprivileged(data_dir, "namespaces")
    planted = Path(sys.prefix, f"troika-test-{uuid.uuid4().hex}.txt")
    code = f"""
import errno
try:
    open({str(planted)!r}, "w").write("planted")
    print("written")
except OSError as error:
    print("refused:", errno.errorcode[error.errno])
"""
    try:
        result = await jailed.run(workspace, code, QUICK)
        assert result.exit_code == 0, result.stderr
        assert result.stdout == "refused: EROFS\n"
        assert not planted.exists()  # noqa: ASYNC240 - nothing else runs meanwhile
    finally:
        planted.unlink(missing_ok=True)  # noqa: ASYNC240 - clean-up of a failed test


def home_folders() -> tuple[Path, set[str], set[str]]:
    """The executor user's home, the names in it the interpreter needs, and the others."""
    home = Path(pwd.getpwuid(os.getuid()).pw_dir).resolve()
    needed = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, *sys.path) if p}
    kept = {p.relative_to(home).parts[0] for p in needed if p.is_relative_to(home) and p != home}
    return home, kept, {entry.name for entry in home.iterdir()} - kept


async def test_the_executor_users_home_is_hidden_when_not_root(data_dir, workspace) -> None:
    jailed = unprivileged(data_dir, "namespaces")
    home, kept, private = home_folders()
    if not private:
        pytest.skip("the executor user's home holds nothing but the interpreter")
    code = f"import os\nprint(sorted(os.listdir({str(home)!r})))"
    result = await jailed.run(workspace, code, QUICK)
    assert result.exit_code == 0, result.stderr
    assert set(literal_eval(result.stdout)) <= kept


@needs_root
def test_without_mount_setattr_each_mount_is_made_read_only_one_by_one(tmp_path) -> None:
    # Kernels before 5.12: the jail remounts each mount read-only, then the scratch writable.
    writable = tmp_path / "writable"
    writable.mkdir()
    script = textwrap.dedent(f"""
        import os, sys
        from troika_executor import jail, jail_host
        libc = jail_host.Libc()
        libc.unshare(jail._CLONE_NEWNS)
        libc.mount(None, "/", None, jail_host.MS_REC | jail_host.MS_PRIVATE)
        jail_host.remount_each(libc, "/", read_only=True)
        for folder in (sys.prefix, {str(tmp_path)!r}):
            try:
                open(os.path.join(folder, "planted"), "w")
                print("written")
            except OSError as error:
                print(error.errno)
        libc.mount({str(writable)!r}, {str(writable)!r}, None, jail_host.MS_BIND)
        jail_host.remount_each(libc, {str(writable)!r}, read_only=False)
        open({str(writable / "kept")!r}, "w").write("kept")
    """)
    run = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, check=False
    )
    try:
        assert (run.returncode, run.stdout.split()) == (0, ["30", "30"]), run.stderr
        assert (writable / "kept").read_text() == "kept"
    finally:
        Path(sys.prefix, "planted").unlink(missing_ok=True)
    assert not (tmp_path / "planted").exists()


async def test_copying_back_is_bounded_in_files_and_depth(
    sandbox, workspace, scratch_parent
) -> None:
    code = """
import os
os.makedirs("many")
for index in range(3000):
    open(f"many/f{index:04}", "w").close()
os.makedirs("d/d/d/d/d")
open("d/d/d/d/d/mid.txt", "w").write("mid")
os.makedirs("deep")
open("deep/bottom.txt", "w").write("bottom")
for _ in range(200):  # wraps "deep" in one more folder each time, with short paths only
    os.mkdir("wrap")
    os.rename("deep", "wrap/d")
    os.rename("wrap", "deep")
print("made")
"""
    result = await sandbox.run(workspace, code, SandboxLimits(timeout_s=30))
    assert (result.exit_code, result.stdout) == (0, "made\n"), result.stderr
    assert len(result.changed_files) == MOST_FILES
    assert result.changed_files[0] == "d/d/d/d/d/mid.txt"
    assert result.changed_files[-1] == f"many/f{MOST_FILES - 2:04}"
    deep = "/".join(["deep"] + ["d"] * DEEPEST)
    assert f"[not copied back: {deep}/: more than {DEEPEST} folders deep]" in result.stderr
    more = 3000 - (MOST_FILES - 1)
    assert f"[not copied back: {more} more new or changed files" in result.stderr
    assert len(list((workspace.root / "many").iterdir())) == MOST_FILES - 1
    assert (workspace.root / "d/d/d/d/d/mid.txt").read_text() == "mid"
    assert list(scratch_parent.iterdir()) == []  # the scratch folder was removed all the same


@needs_root
async def test_processes_that_outlive_the_kill_fail_the_run_loudly(
    sandbox, workspace, scratch_parent, monkeypatch
) -> None:
    # Stand-in for a process that SIGKILL does not end: before the run there is none.
    sweeps = iter([0])
    monkeypatch.setattr(sandbox_processes, "kill_uid", lambda _uid: next(sweeps, 1))
    monkeypatch.setattr(sandbox_processes, "_SWEEP_S", 0.2)
    with capture_logs() as logs, pytest.raises(ProcessesLeft) as left:
        await sandbox.run(workspace, "open('out.txt', 'w').write('out')", QUICK)
    assert left.value.uid in UIDS
    assert "could not be killed" in str(left.value)
    assert any(entry["event"] == "sandbox.processes_left" for entry in logs)
    assert not (workspace.root / "out.txt").exists()  # nothing is copied back
    assert list(scratch_parent.iterdir()) == []
