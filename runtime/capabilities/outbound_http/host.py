"""Guest bindings for outbound HTTP: `wasi:http/outgoing-handler@0.2.x` and the unversioned
`fermyon:spin/http` (`send-request`), both checked against the component's allow-list.

wasi:http: `handle` checks the destination synchronously (a denied one returns
`HTTP-request-denied` from `handle` itself, as Spin, and nothing touches the network), then a
sender thread makes the request while the guest may still be writing the body (streamed from the
outgoing-body as it is written) and resolves the future-incoming-response when the response head
arrives; the response body streams to the guest through a bounded buffer. Request-options
timeouts apply, capped by the request's deadline.

fermyon:spin/http is Spin 1.x-style and fully buffered: `destination-not-allowed` for a denied
URL, `invalid-url`, `request-error` for network failures, `runtime-error` otherwise.

Both interfaces serve some destinations in process, never over a socket (in_process.py): a
sibling component (`http://<id>.spin.internal`), the app itself (a relative URL) and another app
of this server (`http://<app>.lepton.internal`). The network path's self origin is left for a
guest run outside a served request (no `GuestRequest.calls`).

The allow-list (`allowed_outbound_hosts` plus converted legacy `allowed_http_hosts`, templates
rendered with the app variables) is parsed once at load; an invalid entry fails the load. The
app's runtime config `block_networks` is checked by the network path's client on every resolved
address (client.py); in-process destinations open no socket and are not checked (Spin serves
service chaining in process too).

With OpenTelemetry traces on, each request has a client span (Spin's
spin_outbound_http.send_request, exported under the method's name), from `handle` until the
response head or the error, and its W3C `traceparent` goes out with the request, in process too
(runtime/telemetry/hooks.py).
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from registry.loaded import LoadedApp, LoadedComponent
from runtime.capabilities.outbound_http import in_process
from runtime.capabilities.outbound_http.client import (
    OutboundErrorKind,
    OutboundHttpClient,
    OutboundHttpError,
    OutboundResponse,
    SelfOrigin,
    Timeouts,
    resolve_destination,
)
from runtime.capabilities.outbound_http.in_process import Call, Head, InProcessCalls, Target
from runtime.capabilities.support import per_app
from runtime.capabilities.support.allowed_hosts import (
    AllowedHostError,
    AllowedHosts,
    OutboundUrl,
    component_allowed_hosts,
)
from runtime.capabilities.support.blocked_networks import BlockedNetworks
from runtime.capabilities.support.errors import SpinConfigError
from runtime.capabilities.support.wit import record
from runtime.capabilities.variables.host import app_variables
from runtime.capabilities.wasi.http import (
    FORBIDDEN_HEADERS,
    FutureIncomingResponse,
    IncomingResponse,
    OutgoingRequest,
    RequestOptions,
    error_code,
    new_future_response,
)
from runtime.capabilities.wasi.io import FnPollable, InputStream, Pollable, StreamFailed
from runtime.core import context
from runtime.core.context import StateKey
from runtime.core.contract import BaseCapability, InterfaceImpl
from runtime.core.values import rep
from runtime.errors import AppLoadError
from runtime.telemetry import hooks
from runtime.types import AppSettings

NAME = "spin-outbound-http"
# Memo of the allow-list for a component whose prepare() did not run (Spin 1.x modules).
_PREPARED: StateKey[PreparedOutbound] = StateKey("outbound-http.prepared")
RESPONSE_BUFFER = 1024 * 1024  # bytes of response body read ahead of the guest

_client_lock = threading.Lock()
_clients: dict[BlockedNetworks, OutboundHttpClient] = {}


def client(blocked: BlockedNetworks | None = None) -> OutboundHttpClient:
    """The process-wide HTTP client for apps with this block list (`[outbound_networking]`):
    one connection pool shared by all apps without one, and one per block list, so a
    connection opened unchecked is never lent to an app that blocks its address."""
    key = blocked or BlockedNetworks()
    with _client_lock:
        found = _clients.get(key)
        if found is None:
            found = _clients[key] = OutboundHttpClient(blocked=key or None)
        return found


def _blocked(ctx: context.RequestContext) -> BlockedNetworks:
    config = ctx.settings.runtime_config
    return config.blocked_networks if config is not None else BlockedNetworks()


@dataclass(frozen=True)
class PreparedOutbound:
    allowed: AllowedHosts


def allowed_hosts_for(app: LoadedApp, component: LoadedComponent, settings: AppSettings) -> AllowedHosts:
    """The component's parsed allow-list; AppLoadError naming the entry if Spin would refuse it."""
    meta = component.locked
    entries = component_allowed_hosts(
        meta.metadata_list("allowed_outbound_hosts"), meta.metadata_list("allowed_http_hosts")
    )
    where = "allowed_outbound_hosts"
    try:
        if any("{{" in e for e in entries):
            variables = app_variables(app, settings)
            return AllowedHosts.parse(entries, lambda text: variables.render(text, where))
        return AllowedHosts.parse(entries)
    except (AllowedHostError, SpinConfigError) as exc:
        raise AppLoadError(app.name or app.reference, str(exc), component=component.id, field=where) from None


def _prepared() -> PreparedOutbound:
    ctx = context.current()
    prepared = ctx.prepared.get(NAME) or ctx.get(_PREPARED)
    if not isinstance(prepared, PreparedOutbound):
        prepared = per_app.per_app(
            ctx.app,
            f"{NAME}:{ctx.component.id}:{per_app.settings_key(ctx.settings)}",
            lambda: PreparedOutbound(allowed_hosts_for(ctx.app, ctx.component, ctx.settings)),
        )
        ctx.set(_PREPARED, prepared)
    return prepared


def self_origin() -> SelfOrigin | None:
    """Where a relative URL goes: the origin (and mount prefix) of the request being served."""
    request = context.current().request
    if request is None or not request.authority:
        return None
    base = request.spin_headers.get("spin-base-path", "/")
    return SelfOrigin(request.scheme, request.authority, base.rstrip("/"))


# -- wasi:http/outgoing-handler ----------------------------------------------------------------


class ResponseBodyStream(InputStream):
    """The response body, read ahead by a pump thread into a bounded buffer."""

    def __init__(self, response: OutboundResponse) -> None:
        self._response = response
        self._cond = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._error: str | None = None
        self._closed = False
        threading.Thread(target=self._pump, name="lepton-outbound-body", daemon=True).start()

    def _pump(self) -> None:
        try:
            for chunk in self._response.body():
                with self._cond:
                    while self._buffered > RESPONSE_BUFFER and not self._closed:
                        self._cond.wait()
                    if self._closed:
                        return
                    self._chunks.append(chunk)
                    self._buffered += len(chunk)
                    self._cond.notify_all()
        except OutboundHttpError as exc:
            with self._cond:
                self._error = exc.message or exc.kind.value
        finally:
            self._response.close()
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def _ready(self) -> bool:
        return bool(self._chunks) or self._eof

    def _wait(self, deadline: float) -> None:
        with self._cond:
            while not self._ready():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)

    def read(self, n: int, blocking: bool, deadline: float) -> bytes | None:
        if blocking and not self._ready():
            with context.current().waiting():
                self._wait(deadline)
        with self._cond:
            if not self._chunks:
                if self._eof:
                    if self._error is not None:
                        raise StreamFailed(self._error)
                    return None
                return b""
            chunk = self._chunks.popleft()
            if len(chunk) > n:
                self._chunks.appendleft(chunk[n:])
                chunk = chunk[:n]
            self._buffered -= len(chunk)
            self._cond.notify_all()
            return chunk

    def pollable(self) -> Pollable:
        return FnPollable(self._ready, self._wait)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._chunks.clear()
            self._cond.notify_all()


def _body_chunks(req: OutgoingRequest, deadline: float) -> Iterator[bytes]:
    """The outgoing-request body as the guest writes it, until outgoing-body.finish."""
    buf = req.body_stream
    while True:
        with buf.changed:
            while not buf.chunks and not buf.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise OutboundHttpError(OutboundErrorKind.INTERNAL, "request body not finished in time")
                buf.changed.wait(remaining)
            taken = list(buf.chunks)
            buf.chunks.clear()
            done = buf.closed
        yield from taken
        if done:
            return


def _seconds(ns: int | None, cap: float) -> float:
    return cap if ns is None else max(0.0, min(ns / 1e9, cap))


def _error_value(exc: OutboundHttpError) -> Any:
    if exc.kind is OutboundErrorKind.DNS_ERROR:
        return error_code("DNS-error", record(rcode=None, info_code=None))
    if exc.kind is OutboundErrorKind.INTERNAL:
        return error_code("internal-error", exc.message or None)
    return error_code(exc.kind.value)


def _describe(exc: OutboundHttpError) -> str:
    """What the app's log says about a failed call: the error case, and the detail if any."""
    return f"{exc.kind.value} ({exc.message})" if exc.message else exc.kind.value


def _is_self_request(authority: str | None) -> bool:
    """As Spin: no authority, an empty host (SDKs send `:80` for a relative URL), or `self.alt`."""
    if not authority:
        return True
    host = authority.rsplit("@", 1)[-1]
    host = host[: host.index("]") + 1] if host.startswith("[") else host.partition(":")[0]
    return host in ("", "self.alt")


def _in_process_target(url: str) -> tuple[Target, OutboundUrl | None] | None:
    """The in-process destination of a URL (a relative one is the app itself), or None."""
    if url.startswith("/"):
        return in_process.SELF, None
    try:
        parsed = OutboundUrl.parse(url, "https")
    except AllowedHostError:
        return None  # the network path refuses it as it always did
    target = in_process.target_of(parsed.host)
    return (target, parsed) if target is not None else None


def _calls(ctx: context.RequestContext) -> InProcessCalls | None:
    """Where this request's in-process calls go; None outside a served request."""
    return ctx.request.calls if ctx.request is not None else None


def _handle(store: Any, request: Any, options: Any) -> Any:
    ctx = context.current()
    req = ctx.table.take(rep(store, request), OutgoingRequest)
    opts = ctx.table.take(rep(store, options), RequestOptions) if options is not None else None
    path = req.path_with_query or "/"
    if _is_self_request(req.authority):
        url = path if path.startswith("/") else "/" + path
    else:
        url = f"{req.scheme or 'https'}://{req.authority}{path}"
    allowed = _prepared().allowed
    span = hooks.outbound_start(ctx, req.method, url)
    calls = _calls(ctx)
    if calls is not None:
        found = _in_process_target(url)
        if found is not None:
            return _handle_in_process(ctx, calls, req, path, found, allowed, span)
    origin = self_origin()
    shown = url.split("?", 1)[0]  # the query may carry secrets
    try:
        resolve_destination(url, allowed, origin)  # denied: an error now, no network at all
    except OutboundHttpError as exc:
        ctx.log.info("outbound request to %s refused: %s", shown, exc.kind.value)
        hooks.outbound_end(span, error=exc.kind.value)
        return _error_value(exc)
    cap = max(0.0, ctx.remaining())
    timeouts = Timeouts(
        connect_s=_seconds(opts.connect_timeout if opts else None, cap),
        first_byte_s=_seconds(opts.first_byte_timeout if opts else None, cap),
        between_bytes_s=_seconds(opts.between_bytes_timeout if opts else None, cap),
    )
    headers = hooks.inject(list(req.headers.entries), span)
    body: Any = None
    if req.body is not None:
        buf = req.body_stream
        with buf.changed:
            finished = buf.closed
        # A body finished before `handle` goes in one piece (with a Content-Length).
        body = b"".join(buf.chunks) if finished else _body_chunks(req, ctx.deadline)
    future = FutureIncomingResponse()
    streams: list[ResponseBodyStream] = []
    streams_lock = threading.Lock()
    request_over = threading.Event()

    def close_streams() -> None:
        # The request is over: stop reading responses, including one that arrives later.
        with streams_lock:
            request_over.set()
            for stream in streams:
                stream.close()

    ctx.cleanups.append(close_streams)

    def send() -> None:
        try:
            resp = client(_blocked(ctx)).send(req.method, url, headers, body, allowed, origin, timeouts)
        except OutboundHttpError as exc:
            # One line per failed call, as for a denied one: the guest may swallow the error.
            ctx.log.info("outbound request to %s failed: %s", shown, _describe(exc))
            hooks.outbound_end(span, error=exc.kind.value)
            future.resolve(_error_value(exc))
            return
        except Exception as exc:  # never leave the guest waiting on a dead future
            ctx.log.info("outbound request to %s failed: internal-error (%s)", shown, exc)
            hooks.outbound_end(span, error="internal-error")
            future.resolve(error_code("internal-error", str(exc)))
            return
        hooks.outbound_end(span, status=resp.status)
        stream = ResponseBodyStream(resp)
        with streams_lock:
            streams.append(stream)
            if request_over.is_set():
                stream.close()
                return
        # Hop-by-hop headers describe the upstream connection, not the message; wasi:http
        # guests may not set them, so a guest copying these headers must not receive them.
        header_bytes = [(k, v.encode("latin-1")) for k, v in resp.headers if k not in FORBIDDEN_HEADERS]
        future.resolve(IncomingResponse(resp.status, header_bytes, stream))

    threading.Thread(target=send, name="lepton-outbound", daemon=True).start()
    return new_future_response(future)


def _in_process_allowed(ctx: context.RequestContext, allowed: AllowedHosts, target: Target,
                        url: OutboundUrl | None, shown: str) -> bool:
    if in_process.allows(allowed, target, url, ctx.app.components):
        return True
    ctx.log.info("outbound request to %s refused: %s", shown, OutboundErrorKind.DENIED.value)
    return False


def _log_failure(ctx: context.RequestContext, shown: str, exc: OutboundHttpError) -> None:
    verb = "refused" if exc.kind is OutboundErrorKind.DENIED else "failed"
    ctx.log.info("outbound request to %s %s: %s", shown, verb, _describe(exc))


def _handle_in_process(ctx: context.RequestContext, calls: InProcessCalls, req: OutgoingRequest, path: str,
                       found: tuple[Target, OutboundUrl | None], allowed: AllowedHosts, span: Any) -> Any:
    """wasi:http `handle` for a destination served in process (in_process.py): checked as Spin
    checks it (denied: the error from `handle` itself), then run on the event loop while the
    guest goes on (it may still be writing the body)."""
    target, url = found
    shown = (f"{req.scheme or 'https'}://{req.authority}" if url is not None else "") + path.split("?", 1)[0]
    if not _in_process_allowed(ctx, allowed, target, url, shown):
        hooks.outbound_end(span, error=OutboundErrorKind.DENIED.value)
        return error_code(OutboundErrorKind.DENIED.value)
    future = FutureIncomingResponse()
    # The callee continues the trace from the traceparent, as it would over the network.
    headers = hooks.inject(in_process.forwarded_headers(list(req.headers.entries)), span)
    loop = calls.loop
    length: int | None
    if req.body is None:
        body, length = in_process.bytes_body(b""), 0
    else:
        buf = req.body_stream
        with buf.changed:
            finished = buf.closed
            data = b"".join(buf.chunks) if finished else b""
        if finished:
            body, length = in_process.bytes_body(data), len(data)
        else:
            body, length = in_process.streamed_body(buf, loop), in_process.declared_length(headers)
    call = Call(req.method, req.authority or "", path if path.startswith("/") else "/" + path, headers, body,
                length, ctx.deadline)

    def deliver(outcome: Head | OutboundHttpError) -> None:
        if isinstance(outcome, OutboundHttpError):
            _log_failure(ctx, shown, outcome)
            hooks.outbound_end(span, error=outcome.kind.value)
            future.resolve(_error_value(outcome))
        else:
            hooks.outbound_end(span, status=outcome.status)
            future.resolve(IncomingResponse(outcome.status, outcome.headers, outcome.body))

    in_process.begin(ctx, calls, target, call, deliver)
    return new_future_response(future)


def _spin_send_in_process(ctx: context.RequestContext, calls: InProcessCalls, method: str, uri: str,
                          headers: list[tuple[str, str]], body: bytes | None,
                          found: tuple[Target, OutboundUrl | None], allowed: AllowedHosts) -> Any:
    """fermyon:spin/http `send-request` to a destination served in process: buffered both ways.
    (`headers` carry the call's traceparent already.)"""
    target, url = found
    shown = uri.split("?", 1)[0]
    if not _in_process_allowed(ctx, allowed, target, url, shown):
        return "destination-not-allowed"
    parts = urllib.parse.urlsplit(uri)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    encoded = in_process.forwarded_headers([(k, v.encode("utf-8")) for k, v in headers])
    data = body or b""
    call = Call(method.upper(), parts.netloc, path, encoded, in_process.bytes_body(data), len(data), ctx.deadline)
    outcome: list[Head | OutboundHttpError] = []
    arrived = threading.Event()

    def deliver(result: Head | OutboundHttpError) -> None:
        outcome.append(result)
        arrived.set()

    try:
        with ctx.waiting():  # the whole exchange is a wait on the callee
            in_process.begin(ctx, calls, target, call, deliver)
            if not arrived.wait(max(0.0, ctx.remaining())):
                raise OutboundHttpError(OutboundErrorKind.RESPONSE_TIMEOUT, "no response before the deadline")
            result = outcome[0]
            if isinstance(result, OutboundHttpError):
                raise result
            data = result.body.read_all(ctx.deadline)
    except OutboundHttpError as exc:
        _log_failure(ctx, shown, exc)
        return _spin_http_error(exc)
    response_headers = [(k, v.decode("latin-1")) for k, v in result.headers]
    return record(status=result.status, headers=response_headers, body=data)


# -- fermyon:spin/http (unversioned) -------------------------------------------------------------


def _spin_http_error(exc: OutboundHttpError) -> str:
    if exc.kind is OutboundErrorKind.DENIED:
        return "destination-not-allowed"
    if exc.kind is OutboundErrorKind.INVALID_URL:
        return "invalid-url"
    if exc.kind in (OutboundErrorKind.INTERNAL, OutboundErrorKind.LOOP_DETECTED):
        return "runtime-error"
    return "request-error"


def spin_send(method: str, uri: str, headers: list[tuple[str, str]], body: bytes | None) -> Any:
    """Spin 1.x-style buffered send: a (status, headers, body) record or an http-error name."""
    ctx = context.current()
    span = hooks.outbound_start(ctx, method.upper(), uri)
    result = _spin_send(ctx, method, uri, hooks.inject_text(headers, span), body)
    if isinstance(result, str):
        hooks.outbound_end(span, error=result)
    else:
        hooks.outbound_end(span, status=result.status)
    return result


def _spin_send(ctx: context.RequestContext, method: str, uri: str, headers: list[tuple[str, str]],
               body: bytes | None) -> Any:
    allowed = _prepared().allowed
    calls = _calls(ctx)
    if calls is not None:
        found = _in_process_target(uri)
        if found is not None:
            return _spin_send_in_process(ctx, calls, method, uri, headers, body, found, allowed)
    try:
        with ctx.waiting():  # the whole exchange is a wait on the network
            resp = client(_blocked(ctx)).send(
                method.upper(), uri, headers, body, allowed, self_origin(),
                Timeouts(connect_s=ctx.remaining(), first_byte_s=ctx.remaining(), between_bytes_s=ctx.remaining()),
            )
            try:
                data = resp.read()
            finally:
                resp.close()
    except OutboundHttpError as exc:
        _log_failure(ctx, uri.split("?", 1)[0], exc)
        return _spin_http_error(exc)
    return record(status=resp.status, headers=resp.headers, body=data)


def _spin_send_request(store: Any, req: Any) -> Any:
    return spin_send(str(req.method), str(req.uri), list(req.headers), req.body)


class OutboundHttpCapability(BaseCapability):
    name = NAME
    blocking = True  # waits on the network: never called inline on the event loop
    interfaces = frozenset({"wasi:http/outgoing-handler", "fermyon:spin/http"})

    def implement(self, interface: str, version: str | None) -> InterfaceImpl:
        if interface == "wasi:http/outgoing-handler":
            return InterfaceImpl(funcs={"handle": _handle})
        return InterfaceImpl(funcs={"send-request": _spin_send_request})

    def prepare(self, app: LoadedApp, component: LoadedComponent, settings: AppSettings) -> Any:
        return PreparedOutbound(allowed_hosts_for(app, component, settings))

    def prepare_app(self, app: LoadedApp, settings: AppSettings) -> None:
        """Spin validates every component's allow-list at load, whatever it imports."""
        for component in app.components.values():
            per_app.per_app(
                app,
                f"{NAME}:{component.id}:{per_app.settings_key(settings)}",
                lambda c=component: PreparedOutbound(allowed_hosts_for(app, c, settings)),  # type: ignore[misc]
            )
