"""What a Spin v3 guest sees of its request besides the body: pure functions, no I/O.

- :func:`strip_mount_prefix`: the router mounts an app under a prefix such as ``/hello``; the app
  routes and the guest's path-with-query use the rest (``/hello/a?x`` -> ``/a?x``, ``/hello`` ->
  ``/``).
- :func:`spin_headers`: the ``spin-*`` headers (docs/reference/spin-compat.md, Request headers) (v3
  ``crates/trigger-http/src/headers.rs``), in Spin's order. Differences that come from mounting:
  ``spin-base-path`` is the mount prefix (``/`` without one, as in Spin v3) and ``spin-full-url``
  is the URL the client asked for, prefix included. ``spin-matched-route``, ``spin-path-info`` and
  the component routes describe the app-relative match, exactly as Spin computes them for an app
  served at ``/``.
- :func:`guest_request_headers`: the header list handed to the guest: the client's headers (a
  client-sent ``spin-*`` header is kept, as Spin keeps it: Spin appends), then, for a mounted app,
  ``x-forwarded-prefix`` (replacing any client-sent one), then the ``spin-*`` headers.
- :func:`well_known_response`: Spin's reserved ``/.well-known/spin/`` routes (health, info, 404).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from runtime.http.routes import WELL_KNOWN_PREFIX, RouteMatch

FORWARDED_PREFIX = "x-forwarded-prefix"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


@dataclass(frozen=True)
class AppPath:
    """A request path relative to its app's mount point."""

    path: str  # raw app-relative path, always starting with "/"; what the app's routes match
    query: str  # raw query without "?"

    @property
    def path_with_query(self) -> str:
        """What the guest sees as the request's path-with-query."""
        return f"{self.path}?{self.query}" if self.query else self.path


def normalize_prefix(prefix: str) -> str:
    """``""``/``"/"`` -> ``""`` (no prefix); otherwise a leading ``/`` and no trailing ``/``."""
    prefix = prefix.strip()
    if not prefix.strip("/"):
        return ""
    return "/" + prefix.strip("/")


def strip_mount_prefix(path: str, query: str, mount_prefix: str) -> AppPath | None:
    """The app-relative path, or None when ``path`` is not under the prefix (segment-wise)."""
    prefix = normalize_prefix(mount_prefix)
    if not path:
        path = "/"
    if not prefix:
        return AppPath(path, query)
    if path == prefix:
        return AppPath("/", query)
    if path.startswith(prefix + "/"):
        return AppPath(path[len(prefix) :], query)
    return None


def full_url(scheme: str, host: str, path: str, query: str) -> str:
    """spin-full-url: ``{scheme}://{Host or localhost}{path}[?query]`` of the original request."""
    return f"{scheme}://{host or 'localhost'}{path}{'?' + query if query else ''}"


def format_client_addr(addr: tuple[str, int]) -> str:
    """Rust's ``SocketAddr`` display: ``1.2.3.4:5``, ``[::1]:5``."""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ascii_lower(text: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def path_match_header(name: str) -> str:
    """``SPIN_PATH_MATCH_<NAME upper-cased>`` header-ified: ``:user_id`` -> ``spin-path-match-user-id``."""
    return "spin-path-match-" + _ascii_lower(name).replace("_", "-")


def spin_headers(
    *,
    scheme: str,
    host: str,
    path: str,
    query: str,
    mount_prefix: str,
    match: RouteMatch,
    client_addr: tuple[str, int],
) -> list[tuple[str, str]]:
    """The spin-* headers, in Spin's order. ``path`` is the original raw path (prefix included)."""
    headers = [
        ("spin-path-info", match.path_info),
        ("spin-full-url", full_url(scheme, host, path, query)),
        ("spin-matched-route", match.matched_route),
        ("spin-base-path", normalize_prefix(mount_prefix) or "/"),
        ("spin-raw-component-route", match.raw_route),
        ("spin-component-route", match.component_route),
        ("spin-client-addr", format_client_addr(client_addr)),
    ]
    for name, value in match.named_params.items():
        header = path_match_header(name)
        # Spin's wasi:http executor silently drops headers whose name is not a valid token.
        if _TOKEN.match(header):
            headers.append((header, value))
    return headers


def guest_request_headers(
    client_headers: Sequence[tuple[str, bytes]],
    spin: list[tuple[str, str]],
    mount_prefix: str,
) -> list[tuple[str, bytes]]:
    """Client headers (bytes, untouched), then ``x-forwarded-prefix`` for a mounted app, then the
    spin-* headers (text the host made, encoded as latin-1, or UTF-8 beyond it)."""
    added = [(n, _encode(v)) for n, v in spin]
    prefix = normalize_prefix(mount_prefix)
    if not prefix:
        return [*client_headers, *added]
    kept = [(n, v) for n, v in client_headers if n.lower() != FORWARDED_PREFIX]
    return [*kept, (FORWARDED_PREFIX, _encode(prefix)), *added]


def _encode(value: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


@dataclass(frozen=True)
class ReservedResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def well_known_response(
    app_path: str, *, name: str, version: str | None, oci_image_digest: str | None
) -> ReservedResponse | None:
    """Spin's answer for ``/.well-known/spin/...`` (any method), or None for every other path.

    ``health`` -> 200 ``OK``; ``info`` -> 200 pretty JSON ``{name, version?, oci_image_digest?}``;
    anything else under the prefix (``health/`` included) -> 404 with an empty body.
    """
    if not app_path.startswith(WELL_KNOWN_PREFIX):
        return None
    rest = app_path[len(WELL_KNOWN_PREFIX) :]
    if rest == "health":
        return ReservedResponse(200, (), b"OK")
    if rest == "info":
        info: dict[str, str] = {"name": name}
        if version is not None:
            info["version"] = version
        if oci_image_digest is not None:
            info["oci_image_digest"] = oci_image_digest
        body = json.dumps(info, indent=2, ensure_ascii=False).encode("utf-8")  # serde to_vec_pretty
        return ReservedResponse(200, (("content-type", "application/json"),), body)
    return ReservedResponse(404, (), b"")
