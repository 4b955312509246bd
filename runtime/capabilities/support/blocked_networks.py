"""`[outbound_networking] block_networks`: IP networks an app's outbound connections may not reach.

Spin's semantics (`factor-outbound-networking`, `outbound-networking-config`): each entry is a
CIDR (host bits are dropped: "8.8.8.8/16" is 8.8.0.0/16; a bare address without a prefix length
is refused) or the keyword "private", which blocks every address that is not globally routable
(the IANA special-purpose registries: loopback, RFC 1918, link-local, shared, documentation,
benchmarking, reserved, unique-local IPv6, ...). The check is made on the resolved addresses,
after DNS, and an IPv4-mapped or -compatible IPv6 address is checked as its IPv4 address too.
Blocked addresses are dropped from the resolved list; the connection fails only when none is
left ("destination IP prohibited"). The caller then connects to one of the addresses returned,
never to the name again, so a DNS answer that changes between check and connect cannot slip a
blocked address in.

Pure but for `resolve` (one getaddrinfo): no client library here.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

PRIVATE = "private"

# Not globally routable IPv4, as Spin's ip_network crate counts it (Ipv4Network::is_global).
_V4_NOT_GLOBAL = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
        "203.0.113.0/24", "240.0.0.0/4",
    )
)
_V4_GLOBAL_EXCEPTIONS = (ipaddress.IPv4Address("192.0.0.9"), ipaddress.IPv4Address("192.0.0.10"))


class DestinationProhibited(Exception):
    """Every address the destination resolved to is blocked by the app's runtime config."""

    def __init__(self, host: str, addresses: list[str]) -> None:
        super().__init__(
            f"destination IP prohibited by runtime config: {host} ({', '.join(addresses)})"
            if addresses and addresses != [host] else f"destination IP prohibited by runtime config: {host}"
        )


def parse_network(text: str) -> Network | None:
    """A block_networks CIDR entry (host bits truncated, as Spin), or None if it is not one."""
    if "/" not in text:
        return None  # Spin's IpNetwork::from_str_truncate wants a prefix length
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def is_global(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv4Address):
        if address in _V4_GLOBAL_EXCEPTIONS:
            return True
        return not any(address in net for net in _V4_NOT_GLOBAL)
    return address.is_global


def _embedded_v4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d) or -compatible (::a.b.c.d) one."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if int(address) >> 32 == 0:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class BlockedNetworks:
    networks: tuple[Network, ...] = ()
    private: bool = False  # "private": every non-globally-routable address

    @classmethod
    def parse(cls, entries: list[str]) -> BlockedNetworks:
        """From validated entries (see parse_network); ValueError names the first bad one."""
        networks: list[Network] = []
        private = False
        for entry in entries:
            if entry == PRIVATE:
                private = True
                continue
            net = parse_network(entry)
            if net is None:
                raise ValueError(entry)
            networks.append(net)
        return cls(tuple(networks), private)

    def __bool__(self) -> bool:
        return self.private or bool(self.networks)

    def is_blocked(self, address: Address | str) -> bool:
        if isinstance(address, str):
            address = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
        if self.private and not is_global(address):
            return True
        if any(address.version == net.version and address in net for net in self.networks):
            return True
        embedded = _embedded_v4(address)
        return embedded is not None and embedded != address and self.is_blocked(embedded)

    def allowed(self, host: str, addresses: list[str]) -> list[str]:
        """`addresses` less the blocked ones; DestinationProhibited if none is left."""
        kept = [a for a in addresses if not self.is_blocked(a)]
        if addresses and not kept:
            raise DestinationProhibited(host, addresses)
        return kept


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to for a TCP connection, in the resolver's order, without
    duplicates. Raises OSError (socket.gaierror) when it does not resolve."""
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def checked_addresses(host: str, port: int, blocked: BlockedNetworks) -> list[str]:
    """Resolve `host` and keep the addresses the app may connect to (see module doc)."""
    return blocked.allowed(host, resolve(host, port))


def checked_host(host: str, port: int, tls: bool, blocked: BlockedNetworks) -> str:
    """What a database client should connect to: `host` itself when nothing is blocked; else
    the first checked address of it, or, for TLS, the name once it is checked (the client
    verifies the certificate against the name, and an address that answers for the name after
    the check must hold a certificate for it: a DNS answer changed in between cannot reach a
    blocked server unnoticed). DestinationProhibited when every address is blocked."""
    if not blocked:
        return host
    addresses = checked_addresses(host, port, blocked)
    return host if tls or not addresses else addresses[0]
