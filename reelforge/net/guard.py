"""The outbound-address guard (SSRF): which hosts a client-named URL may make this server reach.

By default only public (globally routable) addresses. An operator may open named networks,
`loopback` (127.0.0.0/8, ::1) and `private` (RFC 1918, CGNAT 100.64.0.0/10, IPv6 ULA), or any
CIDR. Opening `private` does not open link-local space or the cloud metadata addresses
(169.254.169.254 and its kin): those answer with credentials, so only a CIDR that names them
exactly opens them. Unspecified, multicast and reserved addresses are never reached.

A host is resolved once per connection and every address of the answer is checked before
any is connected to; the connection is then made to a checked address, never through a
second lookup, which DNS may answer differently (rebinding). `reelforge.net.transport` does
this for httpx; `resolve` alone serves checks at submit time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import idna

__all__ = ["NAMED_NETWORKS", "OutboundPolicy", "OutboundRefused", "Resolver", "Target"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

NAMED_NETWORKS: dict[str, tuple[str, ...]] = {
    "loopback": ("127.0.0.0/8", "::1/128"),
    "private": ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"),
}

# Instance-metadata endpoints of the major clouds (AWS, GCP, Azure, OpenStack; AWS's IPv6;
# Alibaba): reachable only if a CIDR names them, never through a keyword.
_METADATA = tuple(
    ipaddress.ip_network(cidr)
    for cidr in ("169.254.169.254/32", "fd00:ec2::254/128", "100.100.100.200/32")
)
_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""The addresses a host name (and port) resolves to; raises OSError if it does not."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The system's answer (getaddrinfo, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class OutboundRefused(Exception):
    """The URL is malformed or names an address this server will not reach; the message says
    which, in words fit for the client."""


@dataclass(frozen=True)
class Target:
    """A checked http(s) URL, split into what a connection needs."""

    url: str
    scheme: str
    host: str  # ASCII (IDNA-encoded), without brackets
    port: int


class OutboundPolicy:
    """Which networks beyond the public internet client-named URLs may reach.

    `allow`: keywords of `NAMED_NETWORKS` and CIDRs, e.g. ("loopback", "10.20.0.0/16").
    `setting` names the configuration that opens networks, for refusal messages.
    `resolver` answers DNS questions (the system's by default; tests name hosts with it).
    """

    def __init__(
        self, allow: Iterable[str] = (), *, setting: str = "", resolver: Resolver | None = None
    ) -> None:
        self.setting = setting
        self._resolver = resolver or system_resolver
        self._explicit: list[IPNetwork] = []
        self._named: list[IPNetwork] = []
        for item in allow:
            name = item.strip().lower()
            if not name:
                continue
            if name in NAMED_NETWORKS:
                self._named.extend(ipaddress.ip_network(c) for c in NAMED_NETWORKS[name])
            else:
                try:
                    self._explicit.append(ipaddress.ip_network(name, strict=False))
                except ValueError:
                    known = ", ".join(NAMED_NETWORKS)
                    raise ValueError(
                        f"{item!r} is neither a network name ({known}) nor a CIDR"
                    ) from None

    def parse(self, url: str) -> Target:
        """Split and check the form of an http(s) URL (no DNS); raise `OutboundRefused`."""
        if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
            raise OutboundRefused("is not a valid URL: it contains spaces or control characters")
        try:
            parts = urlsplit(url)
            port = parts.port
            hostname = parts.hostname
        except ValueError as exc:  # "http://[::1", "http://a:abc/", a port past 65535
            raise OutboundRefused(f"is not a valid URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise OutboundRefused("must be an http(s) URL")
        if not hostname:
            raise OutboundRefused("is not a valid URL: it names no host")
        if port == 0:
            raise OutboundRefused("is not a valid URL: port 0")
        return Target(
            url, scheme, _ascii_host(hostname), port or (443 if scheme == "https" else 80)
        )

    def check_address(self, address: str | IPAddress) -> None:
        """Raise `OutboundRefused` unless this server may connect to `address`."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(ip, ipaddress.IPv6Address):
            ip = _embedded_ipv4(ip) or ip  # ::ffff:127.0.0.1 is 127.0.0.1, and so on
        if any(ip in net for net in self._explicit):
            return
        if ip.is_unspecified or ip.is_multicast:
            raise OutboundRefused(f"points to an address no server can be reached at ({ip})")
        if any(ip in net for net in _METADATA):
            raise OutboundRefused(
                f"points to a cloud metadata address ({ip}); only a setting that names it as a "
                "CIDR opens it"
            )
        if any(ip in net for net in self._named):
            return
        if not ip.is_global:
            hint = f"; {self.setting} opens loopback or private networks" if self.setting else ""
            raise OutboundRefused(
                f"points to a non-public address ({ip}); this server does not reach loopback, "
                f"private or link-local networks{hint}"
            )

    async def resolve(self, target: Target) -> list[str]:
        """Every address `target.host` resolves to, each checked; raise `OutboundRefused`."""
        return await self.addresses_of(target.host, target.port)

    async def addresses_of(self, host: str, port: int) -> list[str]:
        """Every address `host` resolves to, all checked before any is returned (an IPv6
        zone id kept, for connecting); raise `OutboundRefused` if one is forbidden or there
        is none."""
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            self.check_address(literal)
            return [str(literal)]
        try:
            addresses = [str(address) for address in await self._resolver(host, port)]
        except (OSError, UnicodeError):
            addresses = []
        if not addresses:
            raise OutboundRefused(f"could not be downloaded: host {host!r} not found")
        for address in addresses:
            self.check_address(address.split("%", 1)[0])  # drop an IPv6 zone id
        return addresses


def _ascii_host(hostname: str) -> str:
    try:
        ipaddress.ip_address(hostname)
        return hostname
    except ValueError:
        pass
    if hostname.isascii():
        labels = hostname.rstrip(".").split(".")
        if len(hostname) > 253 or not all(_LABEL.match(label) for label in labels):
            raise OutboundRefused(f"is not a valid URL: {hostname!r} is not a host name")
        try:  # a punycode label ("xn--...") must decode, or the connection's encoder raises
            for label in labels:
                if label.lower().startswith("xn--"):
                    idna.decode(label)
        except (idna.IDNAError, UnicodeError):
            raise OutboundRefused(f"is not a valid URL: {hostname!r} is not a host name") from None
        return hostname
    try:
        return idna.encode(hostname, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise OutboundRefused(f"is not a valid URL: {hostname!r} is not a host name") from None


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one reaches by construction: IPv4-mapped (`::ffff:a.b.c.d`),
    NAT64's well-known prefix (`64:ff9b::a.b.c.d`, which Python counts as global) and 6to4
    (`2002:aabb:ccdd::`); None for any other."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour
