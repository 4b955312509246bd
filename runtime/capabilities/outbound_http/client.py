"""Outbound HTTP for guests: the allow-list check, then a real HTTP client (httpx).

Shared by both guest interfaces: `wasi:http/outgoing-handler` (streaming, per-request timeouts)
and `fermyon:spin/http.send-request` (buffered). The order is fixed: parse the URL, check it
against the component's `allowed_outbound_hosts`, and only then touch the network, so a denied
destination never sees a connection (not even DNS).

Relative URLs (`/path`) are "self" requests: allowed only by `http://self`-style entries (or a
`*` host), and sent to the origin (scheme, host, mount prefix) of the inbound request being
served, as Spin sends them to its own listener.

One `httpx.Client` per runtime gives connection reuse across requests and apps; apps whose
runtime config blocks networks (`[outbound_networking] block_networks`) get a client per block
list, whose connections are opened by `_CheckedBackend`: the host is resolved, the blocked
addresses dropped (none left: `destination-IP-prohibited`), and the socket connects to a checked
address, so a pooled connection never crosses from an app without the block to one with it. The request is
built without httpx's default headers (no added Accept-Encoding / User-Agent) and the response
body is passed through undecoded, as a proxy should. Calls are blocking: guests run in worker
threads, and these calls happen inside host functions called from wasm.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from runtime.capabilities.support.allowed_hosts import AllowedHostError, AllowedHosts, OutboundUrl
from runtime.capabilities.support.blocked_networks import (
    BlockedNetworks,
    DestinationProhibited,
    checked_addresses,
)
from runtime.capabilities.support.errors import GuestVisibleError

DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_READ_TIMEOUT_S = 60.0
# Headers a client must not forward (hop-by-hop); wasi:http forbids guests to set them anyway.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "host",
     "http2-settings"}
)


class OutboundErrorKind(enum.Enum):
    """Named after wasi:http `error-code` cases (fermyon:spin/http maps them to `http-error`)."""

    DENIED = "HTTP-request-denied"
    INVALID_URL = "HTTP-request-URI-invalid"
    DNS_ERROR = "DNS-error"
    DESTINATION_PROHIBITED = "destination-IP-prohibited"  # runtime config block_networks
    CONNECTION_REFUSED = "connection-refused"
    CONNECTION_TIMEOUT = "connection-timeout"
    RESPONSE_TIMEOUT = "HTTP-response-timeout"
    PROTOCOL_ERROR = "HTTP-protocol-error"
    LOOP_DETECTED = "loop-detected"  # an in-process call chain went too deep (runtime.capabilities.outbound_http.in_process)
    INTERNAL = "internal-error"


class OutboundHttpError(GuestVisibleError[OutboundErrorKind]):
    """An outbound request failure the guest receives as an `OutboundErrorKind` case."""


@dataclass(frozen=True)
class SelfOrigin:
    """Where relative (self) requests go: the inbound request's scheme://host plus mount prefix."""

    scheme: str
    authority: str
    mount_prefix: str = ""

    def url(self, path_and_query: str) -> str:
        return f"{self.scheme}://{self.authority}{self.mount_prefix}{path_and_query}"


@dataclass(frozen=True)
class Timeouts:
    connect_s: float | None = DEFAULT_CONNECT_TIMEOUT_S
    first_byte_s: float | None = DEFAULT_READ_TIMEOUT_S
    between_bytes_s: float | None = DEFAULT_READ_TIMEOUT_S


def resolve_destination(
    url: str, allowed: AllowedHosts, self_origin: SelfOrigin | None, default_scheme: str = "https"
) -> str:
    """The absolute URL to contact, or OutboundHttpError(DENIED / INVALID_URL). No I/O."""
    if url.startswith("/"):
        if not allowed.allows_relative(["http", "https"]):
            raise OutboundHttpError(OutboundErrorKind.DENIED, "relative URL (self request) not allowed")
        if self_origin is None:
            raise OutboundHttpError(OutboundErrorKind.INVALID_URL, "no origin for a self request")
        return self_origin.url(url)
    try:
        target = OutboundUrl.parse(url, default_scheme)
    except AllowedHostError:
        raise OutboundHttpError(OutboundErrorKind.DENIED, "destination not allowed") from None
    if not allowed.allows(target):
        raise OutboundHttpError(OutboundErrorKind.DENIED, f"{target.scheme}://{target.host} not allowed")
    if "://" not in url:
        url = f"{default_scheme}://{url}"
    if target.scheme not in ("http", "https"):
        raise OutboundHttpError(OutboundErrorKind.INVALID_URL, f"unsupported scheme {target.scheme!r}")
    return url


class OutboundResponse:
    """A streaming response; iterate `body()` (raw, undecoded bytes) then `close()`."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers: list[tuple[str, str]] = [
            (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in response.headers.raw
        ]

    def body(self) -> Iterator[bytes]:
        try:
            yield from self._response.iter_raw()
        except httpx.TimeoutException as exc:
            raise OutboundHttpError(OutboundErrorKind.RESPONSE_TIMEOUT, str(exc)) from None
        except httpx.HTTPError as exc:
            raise OutboundHttpError(OutboundErrorKind.PROTOCOL_ERROR, str(exc)) from None

    def read(self) -> bytes:
        return b"".join(self.body())

    def close(self) -> None:
        self._response.close()


class _CheckedBackend(httpcore.NetworkBackend):
    """Opens connections only to addresses the block list allows (after DNS, each address)."""

    def __init__(self, blocked: BlockedNetworks) -> None:
        self._blocked = blocked
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        try:
            addresses = checked_addresses(host, port, self._blocked)
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from None
        failure: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:  # the checked addresses, never the name again
            try:
                return self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
        raise failure

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("Unix sockets are not reachable from guests")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _CheckedTransport(httpx.HTTPTransport):
    def __init__(self, blocked: BlockedNetworks, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        # httpx's transport takes no network backend: its pool is replaced by one that has ours.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_CheckedBackend(blocked),
        )


class OutboundHttpClient:
    """Process-wide client (thread-safe; connections are pooled and reused). With `blocked`,
    every connection it opens is checked against that block list."""

    def __init__(self, max_connections: int = 100, blocked: BlockedNetworks | None = None) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=20)
        self._client = httpx.Client(
            limits=limits,
            follow_redirects=False,  # redirects are the guest's business, as in Spin
            trust_env=False,  # never route guests through the host's proxy settings
            transport=_CheckedTransport(blocked, limits) if blocked else None,
        )
        self._lock = threading.Lock()
        self._closed = False

    def send(
        self,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str | bytes]],
        body: bytes | Iterable[bytes] | None,
        allowed: AllowedHosts,
        self_origin: SelfOrigin | None = None,
        timeouts: Timeouts | None = None,
    ) -> OutboundResponse:
        """Check, then send; returns once the response head has arrived."""
        target = resolve_destination(url, allowed, self_origin)
        t = timeouts or Timeouts()
        timeout = httpx.Timeout(
            connect=t.connect_s,
            read=t.first_byte_s if t.first_byte_s is not None else t.between_bytes_s,
            write=t.between_bytes_s,
            pool=t.connect_s,
        )
        header_list = [
            (k, v if isinstance(v, str) else v.decode("latin-1")) for k, v in headers if k.lower() not in _HOP_BY_HOP
        ]
        try:
            request = httpx.Request(method, target, headers=header_list, content=body)
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            raise OutboundHttpError(OutboundErrorKind.INVALID_URL, str(exc)) from None
        request.extensions["timeout"] = timeout.as_dict()
        try:
            response = self._client.send(request, stream=True)
        except DestinationProhibited as exc:
            raise OutboundHttpError(OutboundErrorKind.DESTINATION_PROHIBITED, str(exc)) from None
        except httpx.ConnectTimeout as exc:
            raise OutboundHttpError(OutboundErrorKind.CONNECTION_TIMEOUT, str(exc)) from None
        except httpx.TimeoutException as exc:
            raise OutboundHttpError(OutboundErrorKind.RESPONSE_TIMEOUT, str(exc)) from None
        except httpx.ConnectError as exc:
            text = str(exc)
            kind = (
                OutboundErrorKind.DNS_ERROR
                if "Name or service not known" in text or "nodename nor servname" in text
                or "Temporary failure in name resolution" in text
                else OutboundErrorKind.CONNECTION_REFUSED
            )
            raise OutboundHttpError(kind, text) from None
        except httpx.UnsupportedProtocol as exc:
            raise OutboundHttpError(OutboundErrorKind.INVALID_URL, str(exc)) from None
        except httpx.HTTPError as exc:
            raise OutboundHttpError(OutboundErrorKind.PROTOCOL_ERROR, str(exc)) from None
        return OutboundResponse(response)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._client.close()
