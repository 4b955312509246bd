"""The boundary between router/ and runtime/: one request in, one streaming response out, and
the hook through which a guest reaches the other apps of its host (AppDirectory).

Headers are (name, value) pairs with the name a lower-case ``str`` and the value ``bytes``, as
they come off the wire: values are decoded only where a rule needs their text (routing reads
Host and X-Forwarded-*), never decoded and re-encoded on the way through (wasi:http hands the
guest bytes, too)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from runtime.runtime_config import RuntimeConfig

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
    # routes.toml `runtime_config`: the app's Spin runtime-config.toml (key-value stores, ...).
    runtime_config: RuntimeConfig | None = None
    # The name the router serves the app under (routes.toml [apps.NAME]); "" outside a router.
    # Redis-backed key-value stores namespace their keys by it.
    app_name: str = ""


@dataclass(frozen=True)
class CallChain:
    """Where an in-process call (a guest calling a component, its own app or another app of this
    server through the host, never the network) sits in its chain. Only the runtime makes one, so
    a client cannot forge it."""

    depth: int  # hops from the client's request: 1 for a call made while serving that request
    deadline: float  # time.monotonic() when the caller gives up: the callee's time counts against it
    caller_app: str = ""  # the calling app's name when the call crosses apps (<app>.lepton.internal)


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
    # The name this server serves the app under (routes.toml [apps.NAME]); "" outside a router.
    # Calls between apps name their caller by it.
    served_as: str = ""
    chain: CallChain | None = None  # None: the request came from the network


@dataclass
class OutgoingResponse:
    status: int
    headers: list[tuple[str, bytes]]  # as the guest set them (names as given, lower-case by wasi:http)
    body: AsyncIterator[bytes]  # streamed as the guest writes it
    # The whole body, when it was complete before the head was sent (``body`` then yields just
    # this): the server can send it in one message instead of streaming it.
    whole_body: bytes | None = None


class AppCallRefused(Exception):
    """An in-process call to another app is not allowed, or there is no such app (the message
    says which); the calling guest gets the interface's denied error."""


class AppDirectory(Protocol):
    """How the runtime reaches the other apps of its host (the router implements it): a call to
    ``http://<target>.lepton.internal/...``. The host checks that ``target`` serves and lets
    ``caller`` call it (or raises AppCallRefused), and hands ``request`` to the target's routes
    as if it came in on the shared port, with the same accounting; the response streams back."""

    async def call(self, caller: str, target: str, request: IncomingRequest) -> OutgoingResponse: ...
