"""Who the client is: X-Forwarded-For/-Proto/-Host, honoured only from trusted proxy addresses. Pure.

A proxy can only vouch for what it saw, so X-Forwarded-For is read from the right: entries added by
trusted proxies are skipped and the first untrusted address is the client. Anything a client sends
directly (peer not trusted) is ignored, so it cannot spoof its address, scheme or host.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ClientView:
    addr: tuple[str, int]
    scheme: str
    host: str  # the Host the client asked for (authority, may include a port); "" when absent


class TrustedProxies:
    def __init__(self, networks: Iterable[str]) -> None:
        self.networks: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr.strip("[]"))
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.networks)


def _header_values(headers: Sequence[tuple[str, bytes]], name: str) -> list[str]:
    """All comma-separated values of a (possibly repeated) header, in order, as text."""
    values: list[str] = []
    for key, value in headers:
        if key == name:
            values.extend(v.strip() for v in value.decode("latin-1").split(","))
    return [v for v in values if v]


def _parse_forwarded_addr(value: str) -> tuple[str, int] | None:
    value = value.strip().strip('"')
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            return None
        host, rest = value[1:end], value[end + 1 :]
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else 0
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
        port = int(port_text) if port_text.isdigit() else 0
    else:
        host, port = value, 0
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host, port


def client_view(
    peer: tuple[str, int],
    scheme: str,
    headers: Sequence[tuple[str, bytes]],
    trusted: TrustedProxies,
) -> ClientView:
    """peer: the TCP peer; headers: lower-case names, values as received (only the few this
    reads are decoded). Host falls back to the Host header."""
    host = ""
    for key, value in headers:
        if key == "host":
            host = value.decode("latin-1")
            break
    if not trusted or not trusted.trusts(peer[0]):
        return ClientView(addr=peer, scheme=scheme, host=host)

    addr = peer
    chain = _header_values(headers, "x-forwarded-for")
    for entry in reversed(chain):
        parsed = _parse_forwarded_addr(entry)
        if parsed is None:
            break  # garbage: stop trusting the chain here, keep the last good address
        addr = parsed
        if not trusted.trusts(parsed[0]):
            break
    protos = _header_values(headers, "x-forwarded-proto")
    if protos and protos[-1].lower() in ("http", "https"):
        scheme = protos[-1].lower()
    forwarded_hosts = _header_values(headers, "x-forwarded-host")
    if forwarded_hosts:
        host = forwarded_hosts[-1]
    return ClientView(addr=addr, scheme=scheme, host=host)
