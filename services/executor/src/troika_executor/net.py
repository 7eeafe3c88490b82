"""Outbound HTTP that cannot be turned against the machine it runs on or its network.

Every connection, for the first request and for each redirect, is opened by
:class:`GuardedBackend`: the host is resolved first, every address it resolves to must be
public (not loopback, private, link-local, cloud metadata, multicast, reserved or unspecified,
also as IPv4-mapped IPv6), and the socket connects to the address that was checked, so a second
DNS answer cannot swap it. URLs, ``Host`` headers and TLS verification keep the original name.
The operator may allow hosts by name, address or ``host:port`` (tests allow their loopback
servers this way).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import httpcore
import httpx

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["Blocked", "GuardedBackend", "OutboundPolicy", "checked_addresses", "guarded_client"]

USER_AGENT = "Troika/0.1 (multi-agent task assistant)"


class Blocked(httpcore.ConnectError):
    """The destination is not one the tools may reach."""


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """Which destinations outside the public internet are allowed anyway.

    Attributes:
        allowed: Host names, addresses, or ``host:port`` entries.
    """

    allowed: frozenset[str] = frozenset()

    @classmethod
    def of(cls, entries: Iterable[str]) -> OutboundPolicy:
        """A policy from the operator's list (case and surrounding spaces ignored)."""
        return cls(frozenset(e.strip().lower() for e in entries if e.strip()))

    def allows(self, host: str, port: int) -> bool:
        """Whether the operator allowed this destination explicitly."""
        host = host.lower().strip("[]")
        return host in self.allowed or f"{host}:{port}" in self.allowed


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
# Not public whatever the Python version's tables say: IPv6 site-local (deprecated, still routed
# inside sites) and the IETF protocol assignments (some of which Python calls global).
_NEVER_PUBLIC = (ipaddress.ip_network("fec0::/10"), ipaddress.ip_network("192.0.0.0/24"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo, NAT64, compatible)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in network for network in _NAT64) or ip in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def public(address: str) -> bool:
    """Whether an address is on the public internet (and so is any IPv4 address inside it)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded(ip)
        if inner is not None:
            return public(str(inner))
    if any(ip in network for network in _NEVER_PUBLIC):
        return False
    return ip.is_global and not ip.is_multicast


async def checked_addresses(host: str, port: int, policy: OutboundPolicy) -> list[str]:
    """The addresses of ``host``, each checked: public, or the operator allowed the host.

    Connect to one of these (never resolve the name again), so a name that changes its answer
    between the check and the connection cannot lead elsewhere.

    Raises:
        Blocked: The name leads to an address the tools may not reach.
        httpcore.ConnectError: The name does not resolve.
    """
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise httpcore.ConnectError(f"{host} has no address")
    if not policy.allows(host, port):
        private = [address for address in addresses if not public(address)]
        if private:
            raise Blocked(
                f"{host} leads to {private[0]}, which is not a public address; "
                "the tools may not reach it"
            )
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to checked, public addresses (or allowed hosts)."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolves, checks every address, then connects to the first one."""
        addresses = await checked_addresses(host, port, self.policy)
        return await self.inner.connect_tcp(
            addresses[0], port, timeout=timeout, local_address=local_address,
            socket_options=socket_options,
        )  # fmt: skip

    async def connect_unix_socket(
        self,
        path: str,  # noqa: ARG002 - the interface's signature
        timeout: float | None = None,  # noqa: ARG002
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,  # noqa: ARG002
    ) -> httpcore.AsyncNetworkStream:
        """Never: the tools reach nothing through local sockets."""
        raise Blocked("the tools may not use local sockets")

    async def sleep(self, seconds: float) -> None:
        """Waits (for connection retries)."""
        await self.inner.sleep(seconds)


class _Transport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: OutboundPolicy) -> None:
        super().__init__(retries=0)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            network_backend=GuardedBackend(policy),
            retries=0,
        )


def guarded_client(
    policy: OutboundPolicy, *, timeout: float, max_redirects: int = 3
) -> httpx.AsyncClient:
    """An HTTP client whose every connection, redirects included, passes the guard."""
    return httpx.AsyncClient(
        transport=_Transport(policy),
        timeout=timeout,
        follow_redirects=True,
        max_redirects=max_redirects,
        trust_env=False,  # no proxy from the environment may route around the guard
        headers={"User-Agent": USER_AGENT},
    )
