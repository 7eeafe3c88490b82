"""How the gateway process serves connections."""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.slow


def test_an_idle_connection_stays_open_longer_than_clients_keep_theirs(gateway_process) -> None:
    # A client (httpx keeps an idle connection 5 s) or a proxy in front (60 s is common) that
    # sends its next request on a connection the server is closing gets no answer at all; the
    # server has to keep idle connections open longer than they do.
    address = urlsplit(gateway_process)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    try:
        connection.request("GET", "/health")
        assert connection.getresponse().read()
        first = connection.sock
        time.sleep(6)  # past uvicorn's own default (5 s) and httpx's
        connection.request("GET", "/health")
        answer = connection.getresponse()
        assert (answer.status, connection.sock) == (200, first)  # on the same connection
        answer.read()
    finally:
        connection.close()
