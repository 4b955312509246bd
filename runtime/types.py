"""The boundary between router/ and runtime/: one request in, one streaming response out.

Headers are (name, value) pairs with the name a lower-case ``str`` and the value ``bytes``, as
they come off the wire: values are decoded only where a rule needs their text (routing reads
Host and X-Forwarded-*), never decoded and re-encoded on the way through (wasi:http hands the
guest bytes, too)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1024 * 1024


@dataclass(frozen=True)
class AppSettings:
    """Per-app host settings, from routes.toml; defaults suit a small shared host."""

    timeout_s: float = 30.0  # wall-clock budget of one request (epoch deadline)
    memory_bytes: int = 256 * MiB  # linear memory + tables per instance
    max_body_bytes: int = 10 * MiB  # request body; larger -> 413
    variables: Mapping[str, str] = field(default_factory=dict, repr=False)  # Spin app variables (may be secret: never in repr)
    state_dir: Path | None = None  # durable per-app state (key-value, sqlite)
    # Spin's --max-instance-reuse-count / --idle-instance-timeout, for wasi:http 0.2 handlers: an
    # instance serves up to this many requests one after another (1: a fresh one per request),
    # and is dropped once idle this long (or after a trap or a timeout).
    max_instance_reuse_count: int = 1
    idle_instance_timeout_s: float = 1.0


@dataclass(frozen=True)
class IncomingRequest:
    method: str
    scheme: str  # "http" | "https", as trusted by the router (X-Forwarded-Proto from a trusted proxy)
    host: str  # the Host header (authority) as trusted by the router; "" when absent
    path: str  # raw, percent-encoded path as received, including the mount prefix
    query: str  # raw query string, without "?"
    headers: Sequence[tuple[str, bytes]]  # as received, lower-case names; no spin-* added yet
    client_addr: tuple[str, int]  # trusted client address
    body: AsyncIterator[bytes]  # streamed as it arrives
    mount_prefix: str = ""  # router prefix such as "/hello"; stripped before the app routes
    content_length: int | None = None
    http_version: str = "1.1"


@dataclass
class OutgoingResponse:
    status: int
    headers: list[tuple[str, bytes]]  # as the guest set them (names as given, lower-case by wasi:http)
    body: AsyncIterator[bytes]  # streamed as the guest writes it
    # The whole body, when it was complete before the head was sent (``body`` then yields just
    # this): the server can send it in one message instead of streaming it.
    whole_body: bytes | None = None
