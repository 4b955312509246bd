"""The routing table: pure data plus a pure lookup from (Host, path) to one app.

Rules:
- the request Host is compared case-insensitively, without port and trailing dot;
- an exact host beats a `*.suffix` wildcard (the longest suffix first), which beats apps with no
  `hosts` (any host). When the more specific host group has no prefix that matches the path, the
  next group is tried, so a catch-all app still serves paths a host-specific app does not claim;
- within a host group the longest `prefix` on a segment boundary wins (`/hello` matches `/hello`,
  `/hello/` and `/hello/x`, not `/helloworld`); the empty prefix matches everything.

Cost per lookup: one dict probe per host suffix plus one per path segment up to the deepest prefix
configured, independent of the number of apps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


class RouteConflict(ValueError):
    """Two apps claim the same host and prefix."""


@dataclass(frozen=True)
class Route(Generic[T]):
    app: str
    prefix: str  # "" or "/a/b"
    target: T


@dataclass
class _PrefixIndex(Generic[T]):
    routes: dict[str, Route[T]] = field(default_factory=dict)
    depth: int = 0  # segments in the deepest prefix

    def add(self, route: Route[T], host: str) -> None:
        other = self.routes.get(route.prefix)
        if other is not None and other.app != route.app:
            raise RouteConflict(
                f"{host or 'any host'} {route.prefix or '/'} is claimed by both "
                f"{other.app!r} and {route.app!r}"
            )
        self.routes[route.prefix] = route
        self.depth = max(self.depth, route.prefix.count("/"))

    def match(self, path: str) -> Route[T] | None:
        routes = self.routes
        # Only the first `depth` segments can be part of a prefix: cut the rest in one go.
        parts = path.split("/", self.depth + 1)
        candidate = "/".join(parts[: self.depth + 1]) if len(parts) > self.depth + 1 else path
        while True:
            route = routes.get(candidate)
            if route is not None:
                return route
            if not candidate:
                return None
            candidate = candidate[: candidate.rfind("/")]


class RoutingTable(Generic[T]):
    """Immutable once built; the server swaps whole tables atomically."""

    def __init__(self) -> None:
        self._exact: dict[str, _PrefixIndex[T]] = {}
        self._wildcard: dict[str, _PrefixIndex[T]] = {}  # "example.com" for "*.example.com"
        self._any: _PrefixIndex[T] = _PrefixIndex()
        self.routes: list[tuple[str, Route[T]]] = []  # (host pattern or "", route) for display

    @classmethod
    def build(cls, entries: Iterable[tuple[str, Iterable[str], str, T]]) -> RoutingTable[T]:
        """entries: (app name, host patterns (normalised; empty = any host), prefix, target)."""
        table: RoutingTable[T] = cls()
        for app, hosts, prefix, target in entries:
            route = Route(app=app, prefix=prefix, target=target)
            host_list = list(hosts)
            for host in host_list or [""]:
                if not host:
                    index = table._any
                elif host.startswith("*."):
                    index = table._wildcard.setdefault(host[2:], _PrefixIndex())
                else:
                    index = table._exact.setdefault(host, _PrefixIndex())
                index.add(route, host)
                table.routes.append((host, route))
        return table

    def __len__(self) -> int:
        return len(self.routes)

    def lookup(self, host: str, path: str) -> Route[T] | None:
        """host: already normalised with `request_host`; path: the raw request path."""
        if not path.startswith("/"):
            path = "/" + path
        if host:
            index = self._exact.get(host)
            if index is not None:
                route = index.match(path)
                if route is not None:
                    return route
            if self._wildcard:
                dot = host.find(".")
                while dot != -1:
                    index = self._wildcard.get(host[dot + 1 :])
                    if index is not None:
                        route = index.match(path)
                        if route is not None:
                            return route
                    dot = host.find(".", dot + 1)
        return self._any.match(path)


def request_host(raw: str | None) -> str:
    """Normalise a Host header value: lower case, port and trailing dot removed.

    A missing or malformed value gives "" (matched only by apps that accept any host).
    """
    if not raw:
        return ""
    host = raw.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end == -1:
            return ""
        rest = host[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return ""
        return host[: end + 1]
    name, sep, port = host.rpartition(":")
    if sep:
        if not port.isdigit() or ":" in name:
            return ""
        host = name
    host = host.rstrip(".")
    if not host or any(c in host for c in "/\\@ \t?#%"):
        return ""
    return host
