"""Ports for the tests' servers: never the same one twice, never one another run claimed."""

from __future__ import annotations

import socket
import subprocess
import sys

from troika_testkit import ports


def test_ports_come_from_this_workers_block_below_the_ephemeral_range_and_never_twice() -> None:
    given = [ports.free_port() for _ in range(20)]
    assert len(set(given)) == 20
    start = ports._block()
    assert all(start <= port < start + ports._BLOCK for port in given)
    assert max(given) < 32768


def test_a_port_another_run_claimed_or_someone_listens_on_is_skipped() -> None:
    upcoming = ports._block() + ports._taken[0] % ports._BLOCK
    claimed, listened = upcoming, upcoming + 1
    other_run = (
        "import sys; from troika_testkit import ports; "
        f"assert ports._claim({claimed}); ports._mine.clear()"  # a run still going holds it
    )
    subprocess.run([sys.executable, "-c", other_run], check=True)
    with socket.socket() as server:
        server.bind(("127.0.0.1", listened))
        server.listen()
        port = ports.free_port()
    assert port not in (claimed, listened)
    (ports._CLAIMS / str(claimed)).unlink()
