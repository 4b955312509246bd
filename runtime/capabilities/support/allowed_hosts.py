"""`allowed_outbound_hosts` exactly as Spin v3 (`crates/outbound-networking-config/src/allowed_hosts.rs`).

An entry is `<scheme>://<host>[:<port>]`:
- scheme: `*` or one alphabetic scheme;
- host: `*`, `*.domain` (any subdomain, not the domain itself), a literal (compared exactly with
  the URL's host, IPv6 in brackets), an IP network `a.b.c.d/n` / `ff00::/8`, or `self` /
  `self.alt` (only relative URLs, i.e. requests to the app itself);
- port: `*`, a number, a range `a..b` (end exclusive), or nothing = the scheme's default port
  (a scheme without a default then needs one);
- no path (a single trailing `/` is tolerated); `{{ var }}` templates are rendered with the app
  variables first; `insecure:allow-all` alone is refused (use `*://*:*`).

Legacy `allowed_http_hosts` (v1 locks) is converted as Spin 3 does: `host[:port]` gives
`http://host[:port]` and `https://host[:port]`, `self` gives `http://self`, and
`insecure:allow-all` gives `http://*:*`, `https://*:*`, `http://self`. If any legacy entry is
invalid, Spin 3 drops the whole converted list, and so do we.

Everything here is pure; the outbound clients call `AllowedHosts.allows` before any connection.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

WELL_KNOWN_PORTS = {
    "postgres": 5432,
    "mysql": 3306,
    "redis": 6379,
    "mqtt": 1883,
    "http": 80,
    "https": 443,
}
_PORT_RE = re.compile(r"^\+?[0-9]+$")  # what Rust's u16::from_str accepts
_ALLOW_ALL_LEGACY = "insecure:allow-all"

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AllowedHostError(ValueError):
    """An entry that Spin would refuse; the message names the entry."""


@dataclass(frozen=True)
class OutboundUrl:
    """The parts of a destination URL the allow-list looks at (host as `url::Url::host_str`)."""

    scheme: str
    host: str
    port: int | None

    @classmethod
    def parse(cls, url: str, default_scheme: str) -> OutboundUrl:
        """Parse `url`; without `scheme://`, `default_scheme://` is prepended (as Spin retries)."""
        text = url.strip()
        if "://" not in text:
            text = f"{default_scheme}://{text}"
        try:
            parts = urllib.parse.urlsplit(text)
            port = parts.port
        except ValueError as exc:
            raise AllowedHostError(f"{url!r} is not a valid URL: {exc}") from None
        host = parts.hostname
        if not host:
            raise AllowedHostError(f"{url!r} does not have a host component")
        if ":" in host:  # IPv6 literal: url::Url::host_str keeps the brackets
            host = f"[{host}]"
        scheme = parts.scheme.lower()
        if port is not None and WELL_KNOWN_PORTS.get(scheme) == port and scheme in ("http", "https"):
            port = None  # url::Url::port() is None for a special scheme's default port
        return cls(scheme=scheme, host=host, port=port)


@dataclass(frozen=True)
class _Port:
    start: int
    end: int  # exclusive, as Rust's Range

    def allows(self, port: int) -> bool:
        return self.start <= port < self.end


@dataclass(frozen=True)
class AllowedHost:
    """One parsed entry. `scheme`/`host`/`ports` None means `*`."""

    original: str
    scheme: str | None
    host_kind: str  # "any" | "subdomain" | "self" | "exact" | "cidr"
    host: str  # suffix ".domain" for subdomain, the literal for exact, "" otherwise
    network: IpNetwork | None
    ports: _Port | None

    @classmethod
    def parse(cls, entry: str) -> AllowedHost:
        url = entry.strip()
        scheme, sep, rest = url.partition("://")
        if not sep:
            if url in ("*", ":", "", "?"):
                raise AllowedHostError(
                    f"{url!r} is not an allowed outbound host format: hosts must be in the form "
                    "<scheme>://<host>[:<port>], with '*' wildcards allowed for each (use '*://*:*' "
                    "to allow all outbound networking)"
                )
            raise AllowedHostError(f"{url!r} does not contain a scheme (e.g., 'http://' or '*://')")
        host, colon, port_part = rest.rpartition(":")
        if not colon:
            host, port_part = rest, ""
        port_text, slash, path = port_part.partition("/")
        if slash and path:
            raise AllowedHostError(f"{url!r} has a path but is not allowed to")
        parsed_scheme = _parse_scheme(scheme, url)
        kind, literal, network = _parse_host(host, url)
        return cls(
            original=entry,
            scheme=parsed_scheme,
            host_kind=kind,
            host=literal,
            network=network,
            ports=_parse_port(port_text, scheme, url),
        )

    def allows(self, url: OutboundUrl) -> bool:
        return self._allows_scheme(url.scheme) and self._allows_host(url.host) and self._allows_port(url)

    def allows_relative(self, schemes: Sequence[str]) -> bool:
        return any(self._allows_scheme(s) for s in schemes) and self.host_kind in ("any", "self")

    def _allows_scheme(self, scheme: str) -> bool:
        return self.scheme is None or self.scheme == scheme

    def _allows_host(self, host: str) -> bool:
        if self.host_kind == "any":
            return True
        if self.host_kind == "subdomain":
            return host.endswith(self.host)
        if self.host_kind == "exact":
            return host == self.host
        if self.host_kind == "cidr":
            assert self.network is not None
            try:
                return ipaddress.ip_address(host) in self.network
            except ValueError:
                return False  # includes bracketed IPv6, as Rust's IpAddr::from_str
        return False  # "self" only matches relative URLs

    def _allows_port(self, url: OutboundUrl) -> bool:
        if self.ports is None:
            return True
        port = url.port if url.port is not None else WELL_KNOWN_PORTS.get(url.scheme)
        return port is not None and self.ports.allows(port)


def _parse_scheme(scheme: str, url: str) -> str | None:
    if scheme == "*":
        return None
    if scheme.startswith("{"):
        raise AllowedHostError(f"{url!r}: scheme lists are not yet supported")
    if not scheme or not all(c.isalpha() for c in scheme):
        raise AllowedHostError(f"{url!r}: scheme {scheme!r} contains non alphabetic character")
    return scheme


def _parse_host(host: str, url: str) -> tuple[str, str, IpNetwork | None]:
    host = host.strip()
    if host == "*":
        return "any", "", None
    if host in ("self", "self.alt"):
        return "self", "", None
    if host.startswith("{"):
        raise AllowedHostError(f"{url!r}: host lists are not yet supported")
    if "/" in host:  # ip_network's from_str_truncate needs an explicit prefix length
        try:
            return "cidr", "", ipaddress.ip_network(host, strict=False)
        except ValueError:
            pass
    if host.split("/")[1:2] not in ([], [""]):
        raise AllowedHostError(f"{url!r}: hosts must not contain paths")
    if host.startswith("*."):
        domain = host[2:]
        if "*" in domain:
            raise AllowedHostError(f"Invalid allowed host {host}: wildcards are allowed only as prefixes")
        return "subdomain", "." + domain, None
    if "*" in host:
        raise AllowedHostError(f"Invalid allowed host {host}: wildcards are allowed only as subdomains")
    return "exact", host.rstrip("/"), None


def _parse_port(port: str, scheme: str, url: str) -> _Port | None:
    if not port:
        default = WELL_KNOWN_PORTS.get(scheme)
        if default is None:
            raise AllowedHostError(
                f"{url!r}: no port was provided and the scheme {scheme!r} does not have a known "
                "default port number"
            )
        return _Port(default, default + 1)
    if port == "*":
        return None
    if port.startswith("{"):
        raise AllowedHostError(f"{url!r}: port lists are not yet supported")
    start, dots, end = port.partition("..")
    if dots:
        return _Port(_u16(start, f"port range {port!r} contains non-number"),
                     _u16(end, f"port range {port!r} contains non-number"))
    value = _u16(port, f"port {port!r} is not a number")
    return _Port(value, value + 1)


def _u16(text: str, message: str) -> int:
    if not _PORT_RE.match(text) or int(text) > 65535:
        raise AllowedHostError(message)
    return int(text)


@dataclass(frozen=True)
class AllowedHosts:
    """A component's whole allow-list (empty = nothing allowed)."""

    entries: tuple[AllowedHost, ...]

    @classmethod
    def parse(cls, entries: Sequence[str], render: Callable[[str], str] | None = None) -> AllowedHosts:
        """Parse entries; templated ones are rendered with `render` first (app variables)."""
        if len(entries) == 1 and entries[0] == _ALLOW_ALL_LEGACY:
            raise AllowedHostError(
                "'insecure:allow-all' is not allowed - use '*://*:*' instead if you really want to "
                "allow all outbound traffic"
            )
        parsed = []
        for entry in entries:
            text = entry
            if "{{" in entry:
                if render is None:
                    raise AllowedHostError(f"{entry!r}: templates need the app's variables")
                text = render(entry)
            parsed.append(AllowedHost.parse(text))
        return cls(tuple(parsed))

    def allows(self, url: OutboundUrl) -> bool:
        return any(h.allows(url) for h in self.entries)

    def allows_url(self, url: str, default_scheme: str) -> bool:
        """False for anything unparsable: a denied destination is never contacted."""
        try:
            return self.allows(OutboundUrl.parse(url, default_scheme))
        except AllowedHostError:
            return False

    def allows_relative(self, schemes: Sequence[str]) -> bool:
        return any(h.allows_relative(schemes) for h in self.entries)


def convert_legacy_http_hosts(allowed_http_hosts: Sequence[str]) -> list[str]:
    """Spin 3's conversion of v1 `allowed_http_hosts` (no database access granted)."""
    if _ALLOW_ALL_LEGACY in allowed_http_hosts:
        return ["http://*:*", "https://*:*", "http://self"]
    out: list[str] = []
    for text in allowed_http_hosts:
        parsed = _parse_legacy(text)
        if parsed is None:
            return []  # Spin: `convert(...).unwrap_or_default()` drops everything on one error
        host, port = parsed
        if host == "self":
            out.append("http://self")
        else:
            suffix = f":{port}" if port is not None else ""
            out.extend([f"http://{host}{suffix}", f"https://{host}{suffix}"])
    return out


def _parse_legacy(text: str) -> tuple[str, int | None] | None:
    url = text if "//" in text else f"http://{text}"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or len(parts.path) > 1:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is not None and port == WELL_KNOWN_PORTS[parts.scheme]:
        port = None  # url::Url::port() hides the scheme's default port
    return host, port


def component_allowed_hosts(metadata_outbound: Sequence[str], metadata_http: Sequence[str]) -> list[str]:
    """The raw entries Spin 3 enforces: `allowed_outbound_hosts` + converted `allowed_http_hosts`."""
    return [*metadata_outbound, *convert_legacy_http_hosts(metadata_http)]
