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
import urllib.error
import urllib.request

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError

from troika_shared.settings import BusSettings
from troika_shared.subjects import Topology

__all__ = ["check_http", "check_service", "main"]


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
        inbox = client.new_inbox()
        subscription = await client.subscribe(inbox)
        await client.publish(f"$SRV.PING.{service}", b"", reply=inbox)
        seen = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while (remaining := deadline - loop.time()) > 0:
            try:
                msg = await subscription.next_msg(timeout=remaining)
            except NatsTimeoutError:
                break
            if not msg.data:
                continue
            instance = str(json.loads(msg.data).get("metadata", {}).get("instance", ""))
            if instance.rsplit(":", 1)[0] == host:
                return None
            seen.append(instance)
        return f"no {service} replica on {host} answered (others: {', '.join(seen) or 'none'})"
    finally:
        await client.close()


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
