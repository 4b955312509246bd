"""In-process HTTP calls: the destinations a guest reaches through the host, never a socket.

As Spin serves service chaining (crates/trigger-http/src/outbound_http.rs, its
`OutboundHttpInterceptor`), a request to `http://<component-id>.spin.internal/...` goes to that
component of the same app, in this process, once the caller's allow-list lets it through:
`http://*.spin.internal` (which Spin expands into one entry per component of the app, so it allows
no other name) or the exact name. Beyond Spin, which serves one app per process:

* a relative URL (Spin's "self" request, allowed by `http://self`) goes to the app's own routes in
  process, as if it had come in on the origin of the request being served, instead of over a
  socket to that origin;
* `http://<app>.lepton.internal/...` reaches another app of this server when the caller's
  allow-list names it (the exact host, or `*.lepton.internal`: a catch-all host such as `*://*:*`
  does not count, since an app written for Spin did not mean other tenants by it) and the callee
  lists the caller in its routes.toml `allow_callers` (the host checks that: runtime.types.AppDirectory).

The guest's thread hands the call to the event loop serving its request (`InProcessCalls.loop`)
and waits for the response head like any outbound call (in `RequestContext.waiting`, so it gives
its CPU turn back). The request body streams from the guest's outgoing-body to the callee as the
guest writes it; the response body streams back through a bounded buffer. Every call carries a
`CallChain`: the callee's deadline is at most the caller's, and a chain deeper than
MAX_CHAIN_DEPTH is refused with `loop-detected`. Each hop holds a worker thread of its app while
it waits, so a loop of apps calling each other ends with an error instead of taking every thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import threading
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, replace
from typing import Protocol

from runtime.capabilities.outbound_http.client import OutboundErrorKind, OutboundHttpError
from runtime.capabilities.support.allowed_hosts import AllowedHosts, OutboundUrl
from runtime.capabilities.wasi.http import FORBIDDEN_HEADERS, BodyInputStream, BufferOutputStream
from runtime.core.context import RequestContext
from runtime.core.guest_io import BodyError, BodySource
from runtime.types import AppCallRefused, OutgoingResponse

SPIN_SUFFIX = ".spin.internal"  # Spin's SERVICE_CHAINING_DOMAIN_SUFFIX
APP_SUFFIX = ".lepton.internal"
# Calls in one chain (the client's request is depth 0). Every hop waits on a worker thread of its
# app (an app may hold half of the 32), so a chain must stay well below that.
MAX_CHAIN_DEPTH = 8
# The calling app's name, on a call between apps. The runtime removes it from every request it
# receives and sets it only on those calls, so a callee can trust it.
CALLER_HEADER = "lepton-caller-app"
# The client address a chained request reports (Spin: CHAINED_CLIENT_ADDR, 0.0.0.0:0).
CHAINED_CLIENT_ADDR = ("0.0.0.0", 0)
# Not handed to the callee: hop-by-hop headers, and Host, which the host sets (Spin drops the
# guest's Host from every outbound request).
_NOT_FORWARDED = FORBIDDEN_HEADERS | {"host", "trailer"}


class TargetKind(enum.Enum):
    SELF = "self"  # a relative URL: the caller's own app
    COMPONENT = "component"  # <id>.spin.internal
    APP = "app"  # <app>.lepton.internal


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    name: str = ""  # the component id or the app name; "" for SELF


SELF = Target(TargetKind.SELF)


def target_of(host: str) -> Target | None:
    """The in-process destination a URL host names (lower case, without port), or None when the
    request goes to the network. As Spin's parse_service_chaining_host: one label, then the suffix."""
    first, dot, rest = host.partition(".")
    if not dot or not first:
        return None
    suffix = "." + rest
    if suffix == SPIN_SUFFIX:
        return Target(TargetKind.COMPONENT, first)
    if suffix == APP_SUFFIX:
        return Target(TargetKind.APP, first)
    return None


def allows(allowed: AllowedHosts, target: Target, url: OutboundUrl | None, component_ids: Collection[str]) -> bool:
    """Whether the caller's allow-list lets this in-process call through (url: None for SELF)."""
    if target.kind is TargetKind.SELF or url is None:
        return allowed.allows_relative(["http", "https"])
    for entry in allowed.entries:
        if target.kind is TargetKind.COMPONENT and entry.host_kind == "subdomain" and entry.host == SPIN_SUFFIX:
            # Spin expands `*.spin.internal` into `<id>.spin.internal` for each component of the
            # app (AllowedHostsConfig::expand_wildcard_service_chaining): no other name matches.
            if target.name not in component_ids:
                continue
            entry = replace(entry, host_kind="exact", host=url.host)
        if target.kind is TargetKind.APP and not (
            entry.host_kind == "exact" or (entry.host_kind == "subdomain" and entry.host == APP_SUFFIX)
        ):
            continue  # another tenant must be named, not reached through a catch-all entry
        if entry.allows(url):
            return True
    return False


@dataclass
class Call:
    """One in-process request as the guest made it."""

    method: str
    authority: str  # as the guest gave it ("" for a relative URL)
    path_with_query: str
    headers: list[tuple[str, bytes]]  # the guest's, without hop-by-hop headers and Host
    body: AsyncIterator[bytes]
    content_length: int | None
    deadline: float  # the caller's: the callee's time counts against it


class InProcessCalls(Protocol):
    """Where the in-process calls of one request's guest go (runtime.http.calls.RequestCalls,
    found as `ctx.request.calls`)."""

    loop: asyncio.AbstractEventLoop  # the loop serving the request; callees run there
    depth: int  # this request's place in its chain (0: it came from the network)

    async def call(self, target: Target, call: Call) -> OutgoingResponse:
        """The callee's response. Raises AppCallRefused (denied), LookupError (no such component)."""
        ...


def forwarded_headers(headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    return [(name.lower(), value) for name, value in headers if name.lower() not in _NOT_FORWARDED]


def declared_length(headers: list[tuple[str, bytes]]) -> int | None:
    for name, value in headers:
        if name == "content-length":
            return int(value) if value.isdigit() else None
    return None


def bytes_body(data: bytes) -> AsyncIterator[bytes]:
    async def one() -> AsyncIterator[bytes]:
        if data:
            yield data

    return one()


def streamed_body(buf: BufferOutputStream, loop: asyncio.AbstractEventLoop) -> AsyncIterator[bytes]:
    """The guest's outgoing-body as the event loop reads it, while the guest still writes it."""
    ready = asyncio.Event()  # bound to the loop at its first wait, on the loop
    pending = [False]

    def woken() -> None:
        pending[0] = False
        ready.set()

    def poke() -> None:
        # On the guest's thread, after each write: one loop wake-up at a time is enough.
        if not pending[0]:
            pending[0] = True
            loop.call_soon_threadsafe(woken)

    buf.listener = poke

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while True:
                ready.clear()
                with buf.changed:
                    taken = list(buf.chunks)
                    buf.chunks.clear()
                    done = buf.closed
                for chunk in taken:
                    if chunk:
                        yield chunk
                if done:
                    return
                await ready.wait()
        finally:
            buf.listener = None

    return chunks()


class CalleeBody(BodyInputStream):
    """The callee's response body as the caller's guest reads it: the loop feeds a bounded buffer
    (BodySource) as the callee writes, read like an incoming request's body; closing it ends the
    call."""

    def __init__(self, source: BodySource, on_close: Callable[[], None]) -> None:
        super().__init__(source)
        self._on_close = on_close

    def read_all(self, deadline: float) -> bytes:
        """The rest of the body, waiting up to `deadline` (the caller is already in `waiting`)."""
        try:
            return self._source.read_all(deadline)
        except BodyError as exc:
            raise OutboundHttpError(OutboundErrorKind.PROTOCOL_ERROR, str(exc)) from None

    def close(self) -> None:
        self._on_close()


@dataclass(frozen=True)
class Head:
    """The callee's response as the caller gets it: status, headers and the streaming body."""

    status: int
    headers: list[tuple[str, bytes]]
    body: CalleeBody


Deliver = Callable[[Head | OutboundHttpError], None]


class Exchange:
    """One in-process call, started from the guest's thread and run on the event loop. `deliver`
    is called once, on the loop, with the response head or the error; `close` (at the end of the
    caller's request, or when the caller drops the body) cancels whatever is still running."""

    def __init__(self, calls: InProcessCalls, target: Target, call: Call, deliver: Deliver) -> None:
        self._calls = calls
        self._target = target
        self._call = call
        self._deliver = deliver
        self._future: concurrent.futures.Future[None] | None = None
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        try:
            future = asyncio.run_coroutine_threadsafe(self._run(), self._calls.loop)
        except RuntimeError as exc:  # the loop is closed: the server is shutting down
            self._deliver(OutboundHttpError(OutboundErrorKind.INTERNAL, f"no event loop: {exc}"))
            return
        with self._lock:
            self._future = future
            closed = self._closed
        if closed:
            future.cancel()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            future = self._future
        if future is not None:
            future.cancel()  # cancels the task on its loop; a finished one stays as it is

    async def _run(self) -> None:
        try:
            response = await self._calls.call(self._target, self._call)
        except AppCallRefused as exc:
            self._deliver(OutboundHttpError(OutboundErrorKind.DENIED, str(exc)))
            return
        except LookupError as exc:
            # Spin traps the caller here ("unknown routing destination"); an error it can
            # handle is kinder and says the same.
            self._deliver(OutboundHttpError(OutboundErrorKind.INTERNAL, str(exc.args[0] if exc.args else exc)))
            return
        except Exception as exc:
            self._deliver(OutboundHttpError(OutboundErrorKind.INTERNAL, f"in-process call failed: {exc}"))
            return
        source = BodySource(asyncio.get_running_loop())
        try:
            headers = forwarded_headers(response.headers)
            self._deliver(Head(response.status, headers, CalleeBody(source, self.close)))
            if response.whole_body is not None:
                source.feed(response.whole_body)
            else:
                async for chunk in response.body:
                    source.feed(chunk)
                    await source.wait_for_space()  # the caller reads at its own pace
            source.end()
        except asyncio.CancelledError:
            source.end(ConnectionError("the call ended before the response body"))
            raise
        except Exception as exc:  # the callee's body broke off: the caller's read fails
            source.end(exc)
        finally:
            aclose = getattr(response.body, "aclose", None)
            if aclose is not None:
                await aclose()  # ends the callee's run and releases its hold on its app


def begin(ctx: RequestContext, calls: InProcessCalls, target: Target, call: Call, deliver: Deliver) -> None:
    """Start an in-process call from the guest's thread; `deliver` gets the head or the error."""
    if calls.depth >= MAX_CHAIN_DEPTH:
        deliver(OutboundHttpError(
            OutboundErrorKind.LOOP_DETECTED, f"more than {MAX_CHAIN_DEPTH} in-process calls in one chain"
        ))
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:  # on the loop itself the call could never run: the loop would be waiting for it
        deliver(OutboundHttpError(OutboundErrorKind.INTERNAL, "in-process call from the event loop"))
        return
    exchange = Exchange(calls, target, call, deliver)
    ctx.cleanups.append(exchange.close)
    exchange.start()
