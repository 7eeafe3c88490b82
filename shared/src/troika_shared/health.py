"""``troika-health``: a container's health check, for each kind of Troika process.

- ``troika-health http URL``: healthy when the address answers 2xx (the gateway's ``/health``,
  the web app's ``/ping``).
- ``troika-health service NAME``: healthy when *this* replica of an agent service (``planner``,
  ``executor``, ``reviewer``, the worker's ``orchestrator``) answers NATS service discovery:
  its process runs, holds its connection to the bus, and consumes. Replicas announce themselves
  as ``<host>:<pid>``; the check looks for its own host's answer among them.

Exit status 0: healthy; 1: not (with why on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
import urllib.error
import urllib.request

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError

from troika_shared.settings import BusSettings
from troika_shared.subjects import Topology

__all__ = ["check_http", "check_service", "main", "ping_service"]


def check_http(url: str, *, timeout_s: float = 3.0) -> str | None:
    """What is wrong with the address (``None``: it answered 2xx)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - the operator's own address
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url} did not answer: {exc}"
    return None if 200 <= status < 300 else f"{url} answered {status}"


async def check_service(
    name: str, settings: BusSettings, *, host: str | None = None, wait_s: float = 1.0
) -> str | None:
    """What is wrong with this host's replica of a service (``None``: it answered)."""
    host = host or socket.gethostname()
    client = Client()
    try:
        await client.connect(
            servers=[url.strip() for url in settings.nats_url.split(",")],
            connect_timeout=settings.connect_timeout_s,
            max_reconnect_attempts=0,
            allow_reconnect=False,
            name=f"health@{host}",
        )
    except (OSError, NatsTimeoutError, TimeoutError, NatsError) as exc:
        return f"the bus did not answer: {type(exc).__name__}: {exc}"
    service = Topology(settings.bus_prefix).service_name(name)
    try:
        answers = await ping_service(client, service, wait_s=wait_s)
    finally:
        await client.close()
    seen = [str(_metadata(answer).get("instance", "")) for answer in answers]
    if any(instance.rsplit(":", 1)[0] == host for instance in seen):
        return None
    return f"no {service} replica on {host} answered (others: {', '.join(seen) or 'none'})"


def _metadata(answer: dict[str, object]) -> dict[str, object]:
    metadata = answer.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


async def ping_service(nc: Client, name: str, *, wait_s: float = 0.25) -> list[dict[str, object]]:
    """Asks every replica of a service for a discovery ``PING``; returns their answers."""
    inbox = nc.new_inbox()
    answers: list[dict[str, object]] = []
    subscription = await nc.subscribe(inbox)
    try:
        await nc.publish(f"$SRV.PING.{name}", b"", reply=inbox)
        deadline = time.monotonic() + wait_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                msg = await subscription.next_msg(timeout=remaining)
            except NatsTimeoutError:
                break
            if msg.data:  # an empty message is the server's "no responders" notice
                answers.append(json.loads(msg.data))
    finally:
        await subscription.unsubscribe()
    return answers


def main(argv: list[str] | None = None) -> None:
    """The command line."""
    parser = argparse.ArgumentParser(prog="troika-health", description=__doc__.split("\n")[0])
    kinds = parser.add_subparsers(dest="kind", required=True)
    kinds.add_parser("http", help="an address that must answer 2xx").add_argument("url")
    kinds.add_parser("service", help="this host's replica of an agent service").add_argument("name")
    args = parser.parse_args(argv)
    if args.kind == "http":
        problem = check_http(args.url)
    else:
        problem = asyncio.run(check_service(args.name, BusSettings()))
    if problem:
        sys.stderr.write(f"unhealthy: {problem}\n")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
