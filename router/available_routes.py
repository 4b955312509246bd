"""The "Available Routes" lines logged when an app (re)loads, as `spin up` prints them. Pure.

`spin up` prints `hello: http://127.0.0.1:3000/hello (wildcard)`; ours print URLs a user can
paste, built from the listen address and the app's routes: a host route as
`http://HOST:PORT/PREFIX`, a route for any host on the listen address itself, with `...` after a
prefix (everything below it is the app's). One line per URL.
"""

from __future__ import annotations

from router.config import AppConfig, RouteConfig

# Pasted into a browser, an unspecified bind address means this machine.
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "": "127.0.0.1"}
_DEFAULT_PORT = {"http": "80", "https": "443"}


def public_address(listen: tuple[str, ...]) -> tuple[str, str] | None:
    """(host, port) of the first TCP listen address, as a URL would carry it; None if there is none."""
    for address in listen:
        if address.startswith(("unix:", "fd://")):
            continue
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit() or (host.count(":") and not host.startswith("[")):
            continue
        return _LOOPBACK.get(host, host), port
    return None


def route_urls(route: RouteConfig, listen: tuple[str, ...], scheme: str = "http") -> list[str]:
    """The URLs reaching `route`, one per host (the listen address when it matches any host)."""
    address = public_address(listen)
    if address is None:
        return []
    listen_host, port = address
    suffix = "" if port == _DEFAULT_PORT.get(scheme) else f":{port}"
    path = f"{route.prefix}/..." if route.prefix else "/"
    if not route.hosts:
        return [f"{scheme}://{listen_host}{suffix}{path}" + ("" if route.prefix else " (any host)")]
    urls = []
    for host in route.hosts:
        note = " (any subdomain)" if host.startswith("*.") else ""
        urls.append(f"{scheme}://{host}{suffix}{path}{note}")
    return urls


def available_routes(app: AppConfig, listen: tuple[str, ...], tls: bool = False) -> list[str]:
    """`NAME: URL` lines for every route of the app."""
    scheme = "https" if tls else "http"
    return [f"{app.name}: {url}" for route in app.routes for url in route_urls(route, listen, scheme)]
