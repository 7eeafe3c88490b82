"""The cuttable proxy: it forwards, and a cut closes what is open and refuses what comes."""

from __future__ import annotations

import socket
import socketserver
import threading
from typing import TYPE_CHECKING

import pytest

from troika_testkit.proxy import CuttableProxy

if TYPE_CHECKING:
    from collections.abc import Iterator


class _Echo(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        while line := self.rfile.readline():
            self.wfile.write(line.upper())


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _ask(connection: socket.socket, text: str) -> bytes:
    connection.sendall(text.encode() + b"\n")
    return connection.makefile("rb").readline()


def _closed(connection: socket.socket) -> bool:
    try:
        return connection.recv(100) == b""
    except ConnectionResetError:  # aborted: the peer reset it
        return True


def test_it_forwards_until_cut_then_refuses_until_restored(echo_port: int) -> None:
    with CuttableProxy(echo_port) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as open_one:
            assert _ask(open_one, "hello") == b"HELLO\n"
            proxy.cut()
            # the open connection is gone: nothing comes back
            assert _closed(open_one)

        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as refused:
            assert _closed(refused)  # closed as soon as it arrives

        proxy.restore()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as again:
            assert _ask(again, "back") == b"BACK\n"
        assert proxy.connections == 3
