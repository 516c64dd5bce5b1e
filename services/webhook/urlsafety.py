"""Which subscriber URLs we are willing to call (SSRF guard).

A webhook URL is chosen by a customer, and the service POSTs to it from inside our network, so
unless private destinations are explicitly allowed (dev stack, tests) every address the host
resolves to must be a public one. The sender then connects to the address that was checked
(:func:`pinned_request`), never to a second resolution of the name, so a DNS answer that changes
between the check and the connection (DNS rebinding) cannot reach an internal address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IPv6 metadata
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
BLOCKED_HOSTNAMES = frozenset({"localhost", "localhost.localdomain", "metadata.google.internal"})


class UnsafeURL(ValueError):
    """The URL is malformed or points somewhere we refuse to call; ``str()`` says why."""


def check_syntax(url: str, *, require_https: bool = False) -> tuple[str, int]:
    """Validate scheme and host; returns (host, port)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"invalid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL("URL scheme must be http or https")
    if require_https and parts.scheme != "https":
        raise UnsafeURL("URL must use https (http is allowed only in development)")
    host = parts.hostname
    if not host:
        raise UnsafeURL("URL has no host")
    if parts.username or parts.password:
        raise UnsafeURL("URL must not contain credentials")
    return host, port or (443 if parts.scheme == "https" else 80)


def address_refusal(ip: IPAddress) -> str | None:
    """Why we will not call ``ip``, or None if it is a public address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return "cloud metadata address"
    if ip.is_loopback:
        return "loopback address"
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_link_local:
        return "link-local address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "carrier-grade NAT (100.64.0.0/10) address"
    if ip.is_multicast:
        return "multicast address"
    if ip.is_private:
        return "private address"
    if ip.is_reserved or not ip.is_global:
        return "non-public address"
    return None


def literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[IPAddress] = []
    for info in infos:
        addr = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
        out.append(ipaddress.ip_address(addr))
    return out


async def check_url(
    url: str, *, allow_private: bool, require_https: bool = False
) -> IPAddress | None:
    """Raise :class:`UnsafeURL` if ``url`` may not be used as a webhook destination.

    Returns the checked address the connection must go to, or None when private destinations
    are allowed (then nothing needs pinning and the name is resolved as usual)."""
    host, port = check_syntax(url, require_https=require_https)
    if allow_private:
        return None
    if host.lower().rstrip(".") in BLOCKED_HOSTNAMES:
        raise UnsafeURL(f"host {host} is not allowed")
    ip = literal_ip(host)
    if ip is not None:
        addresses = [ip]
    else:
        try:
            addresses = await resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise UnsafeURL(f"host {host} does not resolve") from exc
        if not addresses:
            raise UnsafeURL(f"host {host} does not resolve")
    # Every address must be public: a name with one public and one private answer is refused,
    # whichever one the connection would have picked.
    for addr in addresses:
        reason = address_refusal(addr)
        if reason is not None:
            raise UnsafeURL(
                f"URL host {host} resolves to {addr}, a {reason}; only public addresses are allowed"
            )
    return addresses[0]


@dataclass(frozen=True)
class PinnedRequest:
    """Where to send a request so that it reaches ``address`` while the server still sees the
    original name: the URL carries the IP, ``Host`` the name, and TLS uses the name for SNI and
    for certificate verification (httpx's ``sni_hostname`` extension)."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, str]


def pinned_request(url: str, address: IPAddress | None) -> PinnedRequest:
    """The request to make for ``url`` given the address :func:`check_url` returned."""
    if address is None:
        return PinnedRequest(url=url, headers={}, extensions={})
    parts = urlsplit(url)
    host = parts.hostname or ""
    if literal_ip(host) is not None:
        return PinnedRequest(url=url, headers={}, extensions={})
    ip_text = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    netloc = ip_text if parts.port is None else f"{ip_text}:{parts.port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    host_header = host if parts.port is None else f"{host}:{parts.port}"
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return PinnedRequest(url=pinned, headers={"host": host_header}, extensions=extensions)
