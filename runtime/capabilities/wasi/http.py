"""wasi:http/types@0.2.x in Python: fields, requests, responses, bodies, trailers.

The incoming side (incoming-request, incoming-body, response-outparam, outgoing-response,
outgoing-body) serves the incoming-handler executor: the request body is read from the
request's BodySource and the response goes to its ResponseSink as the guest writes it.

The outgoing side's data types (outgoing-request, request-options, incoming-response,
future-incoming-response) are here too because a component sees ONE wasi:http/types instance;
the outgoing-handler itself (the network) belongs to runtime/capabilities/outbound_http. It takes the request with
``ctx.table.take(rep, OutgoingRequest)`` and returns a handle to a ``FutureIncomingResponse``
(``new_future_response(fut)``) that it later ``resolve``s with an ``IncomingResponse`` or an
error-code value (``error_code("HTTP-request-denied")``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from runtime.capabilities.wasi.io import (
    FnPollable,
    InputStream,
    OutputStream,
    Pollable,
    StreamClosed,
    StreamFailed,
    new_input_stream,
    new_output_stream,
    new_pollable,
)
from runtime.core import context
from runtime.core.context import StateKey
from runtime.core.contract import BaseCapability, Drop, InterfaceImpl, resource_type_id
from runtime.core.guest_io import BodyError, BodySource, GuestRequest, ResponseSink, SinkClosed
from runtime.core.values import own, rep, tag
from runtime.errors import GuestTrap

IFACE = "wasi:http/types"
FIELDS = resource_type_id(IFACE, "fields")
INCOMING_REQUEST = resource_type_id(IFACE, "incoming-request")
OUTGOING_REQUEST = resource_type_id(IFACE, "outgoing-request")
REQUEST_OPTIONS = resource_type_id(IFACE, "request-options")
RESPONSE_OUTPARAM = resource_type_id(IFACE, "response-outparam")
INCOMING_RESPONSE = resource_type_id(IFACE, "incoming-response")
INCOMING_BODY = resource_type_id(IFACE, "incoming-body")
FUTURE_TRAILERS = resource_type_id(IFACE, "future-trailers")
OUTGOING_RESPONSE = resource_type_id(IFACE, "outgoing-response")
OUTGOING_BODY = resource_type_id(IFACE, "outgoing-body")
FUTURE_INCOMING_RESPONSE = resource_type_id(IFACE, "future-incoming-response")


# wasmtime-wasi-http's DEFAULT_FORBIDDEN_HEADERS: hop-by-hop headers a guest may not set.
FORBIDDEN_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
        "http2-settings",
    }
)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(rb"[\r\n\x00]")

HEADER_INVALID = tag("invalid-syntax")
HEADER_FORBIDDEN = tag("forbidden")
HEADER_IMMUTABLE = tag("immutable")
OK = tag("ok")  # result<_, _> (both cases None) is tagged
ERR = tag("err")


def error_code(case: str, payload: Any = None) -> Any:
    """An error-code value (a tagged variant), e.g. error_code("internal-error", "boom")."""
    return tag(case, payload)


class Fields:
    __slots__ = ("entries", "immutable")

    def __init__(self, entries: list[tuple[str, bytes]] | None = None, immutable: bool = False) -> None:
        self.entries: list[tuple[str, bytes]] = entries if entries is not None else []
        self.immutable = immutable

    def view(self) -> Fields:
        """Another handle on the same (immutable) entries, as `headers()` hands out."""
        return Fields(self.entries, immutable=True)


def _check(name: str, values: Iterable[bytes]) -> Any | None:
    if not _TOKEN.match(name):
        return HEADER_INVALID
    if name.lower() in FORBIDDEN_HEADERS:
        return HEADER_FORBIDDEN
    for v in values:
        if _BAD_VALUE.search(v):
            return HEADER_INVALID
    return None


def _fields(store: Any, handle: Any) -> Fields:
    return context.current().table.get(rep(store, handle), Fields)


def _fields_new(store: Any) -> Any:
    return own(context.current().table.push(Fields()), FIELDS)


def _fields_from_list(store: Any, entries: list[tuple[str, bytes]]) -> Any:
    out = []
    for name, value in entries:
        problem = _check(name, (value,))
        if problem is not None:
            return problem
        out.append((name.lower(), bytes(value)))
    return own(context.current().table.push(Fields(out)), FIELDS)


def _fields_get(store: Any, self: Any, name: str) -> list[bytes]:
    key = name.lower()
    return [v for k, v in _fields(store, self).entries if k == key]


def _fields_has(store: Any, self: Any, name: str) -> bool:
    key = name.lower()
    return any(k == key for k, _ in _fields(store, self).entries)


def _fields_set(store: Any, self: Any, name: str, values: list[bytes]) -> Any:
    f = _fields(store, self)
    if f.immutable:
        return HEADER_IMMUTABLE
    problem = _check(name, values)
    if problem is not None:
        return problem
    key = name.lower()
    f.entries[:] = [(k, v) for k, v in f.entries if k != key] + [(key, bytes(v)) for v in values]
    return None


def _fields_delete(store: Any, self: Any, name: str) -> Any:
    f = _fields(store, self)
    if f.immutable:
        return HEADER_IMMUTABLE
    if not _TOKEN.match(name):
        return HEADER_INVALID
    key = name.lower()
    f.entries[:] = [(k, v) for k, v in f.entries if k != key]
    return None


def _fields_append(store: Any, self: Any, name: str, value: bytes) -> Any:
    f = _fields(store, self)
    if f.immutable:
        return HEADER_IMMUTABLE
    problem = _check(name, (value,))
    if problem is not None:
        return problem
    f.entries.append((name.lower(), bytes(value)))
    return None


def _fields_entries(store: Any, self: Any) -> list[tuple[str, bytes]]:
    return list(_fields(store, self).entries)


def _fields_clone(store: Any, self: Any) -> Any:
    return own(context.current().table.push(Fields(list(_fields(store, self).entries))), FIELDS)


# -- incoming request -----------------------------------------------------------------------------
_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}


def method_value(method: str) -> Any:
    return tag(method.lower()) if method in _METHODS else tag("other", method)


def method_name(value: Any) -> str:
    name = str(value.tag)
    return str(value.payload) if name == "other" else name.upper()


def scheme_value(scheme: str) -> Any:
    low = scheme.lower()
    return tag("HTTP") if low == "http" else tag("HTTPS") if low == "https" else tag("other", scheme)


class WasiIncomingRequest:
    def __init__(self, request: GuestRequest) -> None:
        self.request = request
        self.headers = Fields(list(request.headers), immutable=True)
        self.consumed = False


class BodyInputStream(InputStream):
    def __init__(self, source: BodySource) -> None:
        self._source = source

    def read(self, n: int, blocking: bool, deadline: float) -> bytes | None:
        try:
            if blocking and not self._source.ready():
                with context.current().waiting():
                    self._source.wait_ready(deadline)
            return self._source.read(n, deadline if blocking else None)
        except BodyError as exc:
            raise StreamFailed(str(exc)) from exc

    def pollable(self) -> Pollable:
        return FnPollable(self._source.ready, self._source.wait_ready)


class IncomingBody:
    def __init__(self, stream: InputStream) -> None:
        self._stream: InputStream | None = stream

    def take_stream(self) -> InputStream | None:
        stream, self._stream = self._stream, None
        return stream


class FutureTrailers:
    """Trailers are not supported on incoming bodies: always ready, never any."""


def _req(store: Any, handle: Any) -> WasiIncomingRequest:
    return context.current().table.get(rep(store, handle), WasiIncomingRequest)


def _req_method(store: Any, self: Any) -> Any:
    return method_value(_req(store, self).request.method)


def _req_path(store: Any, self: Any) -> Any:
    return _req(store, self).request.path_with_query


def _req_scheme(store: Any, self: Any) -> Any:
    return scheme_value(_req(store, self).request.scheme)


def _req_authority(store: Any, self: Any) -> Any:
    return _req(store, self).request.authority or None


def _req_headers(store: Any, self: Any) -> Any:
    return own(context.current().table.push(_req(store, self).headers.view()), FIELDS)


def _req_consume(store: Any, self: Any) -> Any:
    req = _req(store, self)
    if req.consumed:
        return None  # err(())
    req.consumed = True
    body = IncomingBody(BodyInputStream(req.request.body))
    return own(context.current().table.push(body), INCOMING_BODY)


def _body_stream(store: Any, self: Any) -> Any:
    ctx = context.current()
    stream = ctx.table.get(rep(store, self), IncomingBody).take_stream()
    if stream is None:
        return None
    return new_input_stream(stream)


def _body_finish(store: Any, this: Any) -> Any:
    ctx = context.current()
    ctx.table.take(rep(store, this), IncomingBody)
    return own(ctx.table.push(FutureTrailers()), FUTURE_TRAILERS)


def _trailers_subscribe(store: Any, self: Any) -> Any:
    context.current().table.get(rep(store, self), FutureTrailers)
    return new_pollable(Pollable())


def _trailers_get(store: Any, self: Any) -> Any:
    context.current().table.get(rep(store, self), FutureTrailers)
    # some(ok(ok(none))): the outer result is tagged, the option and inner result are bare.
    return tag("ok", None)


# -- outgoing response ------------------------------------------------------------------------------
class WasiOutgoingResponse:
    def __init__(self, headers: Fields) -> None:
        self.status = 200
        self.headers = headers
        self.body_taken = False


class SinkOutputStream(OutputStream):
    def __init__(self, sink: ResponseSink) -> None:
        self._sink = sink

    def check_write(self) -> int:
        try:
            return self._sink.check_writable()
        except SinkClosed as exc:
            raise StreamClosed(str(exc)) from exc

    def write(self, data: bytes, blocking: bool, deadline: float) -> None:
        try:
            self._sink.write(bytes(data), deadline)
        except SinkClosed as exc:
            raise StreamClosed(str(exc)) from exc

    def pollable(self) -> Pollable:
        return FnPollable(self._writable)

    def _writable(self) -> bool:
        try:
            return self._sink.check_writable() > 0
        except SinkClosed:
            return True  # ready: the next write reports the stream closed


class BufferOutputStream(OutputStream):
    """Collects an outgoing-request body (the outbound HTTP capability's outgoing-handler reads `chunks`)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.closed = False
        # Notified on every write and at close, so the outgoing-handler can stream the body
        # to the network while the guest is still writing it.
        self.changed = threading.Condition()
        # Also called (on the guest's thread, outside the lock) after every write and at close:
        # an in-process call reads the body on the event loop, which cannot wait on `changed`.
        self.listener: Callable[[], None] | None = None

    def write(self, data: bytes, blocking: bool, deadline: float) -> None:
        if self.closed:
            raise StreamClosed("body finished")
        with self.changed:
            self.chunks.append(bytes(data))
            self.changed.notify_all()
        self._notify()

    def close_body(self) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify_all()
        self._notify()

    def _notify(self) -> None:
        listener = self.listener
        if listener is not None:
            listener()


# The response body the guest opened, so the executor can finish it if the guest returns without
# calling outgoing-body.finish.
RESPONSE_BODY: StateKey[OutgoingBody] = StateKey("wasi-http.response-body")


class OutgoingBody:
    def __init__(self, stream: OutputStream, on_finish: Any = None) -> None:
        self.stream = stream
        self.stream_taken = False
        self.finished = False
        self._on_finish = on_finish

    def finish(self, error: BaseException | None = None) -> None:
        if not self.finished:
            self.finished = True
            if self._on_finish is not None:
                self._on_finish(error)


def _resp(store: Any, handle: Any) -> WasiOutgoingResponse:
    return context.current().table.get(rep(store, handle), WasiOutgoingResponse)


def _resp_new(store: Any, headers: Any) -> Any:
    ctx = context.current()
    fields = ctx.table.take(rep(store, headers), Fields)
    fields = Fields(fields.entries, immutable=True)
    return own(ctx.table.push(WasiOutgoingResponse(fields)), OUTGOING_RESPONSE)


def _resp_status(store: Any, self: Any) -> int:
    return _resp(store, self).status


def _resp_set_status(store: Any, self: Any, status: int) -> Any:
    if not 100 <= status <= 999:
        return ERR
    _resp(store, self).status = status
    return OK


def _resp_headers(store: Any, self: Any) -> Any:
    return own(context.current().table.push(_resp(store, self).headers.view()), FIELDS)


def _sink() -> ResponseSink:
    sink = context.current().response
    if sink is None:
        raise GuestTrap("no response sink for this request")
    return sink


def _resp_body(store: Any, self: Any) -> Any:
    resp = _resp(store, self)
    if resp.body_taken:
        return None
    resp.body_taken = True
    sink = _sink()
    body = OutgoingBody(SinkOutputStream(sink), on_finish=lambda error: _end_response_body(sink, error))
    ctx = context.current()
    ctx.set(RESPONSE_BODY, body)
    return own(ctx.table.push(body), OUTGOING_BODY)


def _end_response_body(sink: ResponseSink, error: BaseException | None) -> None:
    # A guest may finish the body before response-outparam.set (legal in wasi:http): the
    # response is then complete once it is set, and the executor ends the sink after the call.
    if sink.started:
        sink.finish(error)


def _body_write(store: Any, self: Any) -> Any:
    ctx = context.current()
    body = ctx.table.get(rep(store, self), OutgoingBody)
    if body.stream_taken:
        return None
    body.stream_taken = True
    return new_output_stream(body.stream)


def _outgoing_body_finish(store: Any, this: Any, trailers: Any) -> Any:
    ctx = context.current()
    body = ctx.table.take(rep(store, this), OutgoingBody)
    if trailers is not None:
        ctx.table.discard(rep(store, trailers))  # trailers are not sent (HTTP/1.1 responses)
    body.finish()
    return None  # ok


def _outgoing_body_drop(rep_: int) -> None:
    # Dropped without finish(): wasi:http says the body is incomplete; the response is cut short.
    body = context.current().table.discard(rep_)
    if isinstance(body, OutgoingBody) and not body.finished:
        body.finish(RuntimeError("guest dropped the response body without finishing it"))


class ResponseOutparam:
    pass


def _outparam_set(store: Any, param: Any, response: Any) -> None:
    ctx = context.current()
    ctx.table.take(rep(store, param), ResponseOutparam)
    sink = _sink()
    if sink.started:
        raise GuestTrap("response-outparam.set called twice")
    if hasattr(response, "to_host"):
        resp = ctx.table.take(rep(store, response), WasiOutgoingResponse)
        sink.start(resp.status, resp.headers.entries)
        if not resp.body_taken:
            sink.finish()  # a response whose body is never asked for is empty
    else:
        detail = getattr(response, "tag", response)
        ctx.log.error("guest answered with error-code %s", detail)
        sink.finish(RuntimeError(f"guest returned error-code {detail}"))


# -- outgoing request (data only; the outgoing-handler lives in runtime/capabilities/outbound_http) ------------------------
class OutgoingRequest:
    def __init__(self, headers: Fields) -> None:
        self.method = "GET"
        self.path_with_query: str | None = None
        self.scheme: str | None = None
        self.authority: str | None = None
        self.headers = headers
        self.body: OutgoingBody | None = None
        self.body_stream = BufferOutputStream()


class RequestOptions:
    def __init__(self) -> None:
        self.connect_timeout: int | None = None
        self.first_byte_timeout: int | None = None
        self.between_bytes_timeout: int | None = None


class IncomingResponse:
    """An outbound response as the guest sees it; `stream` is any InputStream (the outbound HTTP capability's)."""

    def __init__(self, status: int, headers: list[tuple[str, bytes]], stream: InputStream) -> None:
        self.status = status
        self.headers = Fields(headers, immutable=True)
        self.stream: InputStream | None = stream


class FutureIncomingResponse:
    """Resolved (from any thread) with an IncomingResponse or an error_code(...) value."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._value: Any = None
        self.taken = False

    def resolve(self, value: IncomingResponse | Any) -> None:
        self._value = value
        self._event.set()

    def pollable(self) -> Pollable:
        return FnPollable(self._event.is_set, self._wait)

    def _wait(self, deadline: float) -> None:
        self._event.wait(max(0.0, deadline - time.monotonic()))

    @property
    def value(self) -> Any:
        return self._value

    def ready(self) -> bool:
        return self._event.is_set()


def new_future_response(fut: FutureIncomingResponse) -> Any:
    return own(context.current().table.push(fut), FUTURE_INCOMING_RESPONSE)


def _oreq(store: Any, handle: Any) -> OutgoingRequest:
    return context.current().table.get(rep(store, handle), OutgoingRequest)


def _oreq_new(store: Any, headers: Any) -> Any:
    ctx = context.current()
    fields = ctx.table.take(rep(store, headers), Fields)
    return own(ctx.table.push(OutgoingRequest(Fields(fields.entries, immutable=True))), OUTGOING_REQUEST)


def _oreq_body(store: Any, self: Any) -> Any:
    req = _oreq(store, self)
    if req.body is not None:
        return None
    req.body = OutgoingBody(req.body_stream, on_finish=lambda error: req.body_stream.close_body())
    return own(context.current().table.push(req.body), OUTGOING_BODY)


def _oreq_get(attr: str, convert: Any = None) -> Any:
    def get(store: Any, self: Any) -> Any:
        value = getattr(_oreq(store, self), attr)
        return convert(value) if convert is not None and value is not None else value

    return get


def _oreq_set(attr: str, convert: Any = None) -> Any:
    def set_(store: Any, self: Any, value: Any) -> Any:
        setattr(_oreq(store, self), attr, convert(value) if convert is not None and value is not None else value)
        return OK

    return set_


def _scheme_name(value: Any) -> str:
    return str(value.payload) if value.tag == "other" else str(value.tag).lower()


def _options_new(store: Any) -> Any:
    return own(context.current().table.push(RequestOptions()), REQUEST_OPTIONS)


def _opt_get(attr: str) -> Any:
    def get(store: Any, self: Any) -> Any:
        return getattr(context.current().table.get(rep(store, self), RequestOptions), attr)

    return get


def _opt_set(attr: str) -> Any:
    def set_(store: Any, self: Any, value: Any) -> Any:
        setattr(context.current().table.get(rep(store, self), RequestOptions), attr, value)
        return OK

    return set_


def _iresp(store: Any, handle: Any) -> IncomingResponse:
    return context.current().table.get(rep(store, handle), IncomingResponse)


def _iresp_status(store: Any, self: Any) -> int:
    return _iresp(store, self).status


def _iresp_headers(store: Any, self: Any) -> Any:
    return own(context.current().table.push(_iresp(store, self).headers.view()), FIELDS)


def _iresp_consume(store: Any, self: Any) -> Any:
    resp = _iresp(store, self)
    stream, resp.stream = resp.stream, None
    if stream is None:
        return None
    return own(context.current().table.push(IncomingBody(stream)), INCOMING_BODY)


def _fut(store: Any, handle: Any) -> FutureIncomingResponse:
    return context.current().table.get(rep(store, handle), FutureIncomingResponse)


def _fut_subscribe(store: Any, self: Any) -> Any:
    return new_pollable(_fut(store, self).pollable())


def _fut_get(store: Any, self: Any) -> Any:
    # option<result<result<own<incoming-response>, error-code>>>: the option is tagged (its
    # payload's classes include object), the outer result is bare (err = None), the inner bare.
    fut = _fut(store, self)
    if not fut.ready():
        return tag("none")
    if fut.taken:
        return tag("some", None)
    fut.taken = True
    value = fut.value
    if isinstance(value, IncomingResponse):
        return tag("some", own(context.current().table.push(value), INCOMING_RESPONSE))
    return tag("some", value)


def _http_error_code(store: Any, err: Any) -> Any:
    rep(store, err)
    return None


def _drop(rep_: int) -> None:
    obj = context.current().table.discard(rep_)
    if isinstance(obj, IncomingBody):
        stream = obj.take_stream()
        if stream is not None:
            stream.close()


class HttpTypesCapability(BaseCapability):
    name = "wasi-http-types"
    inline_safe = True  # in-memory work only: may run on the event loop (see runtime.http.scheduling)
    interfaces = frozenset({IFACE})

    def implement(self, interface: str, version: str | None) -> InterfaceImpl:
        resources: dict[str, tuple[int, Drop]] = {
            "fields": (FIELDS, _drop),
            "incoming-request": (INCOMING_REQUEST, _drop),
            "outgoing-request": (OUTGOING_REQUEST, _drop),
            "request-options": (REQUEST_OPTIONS, _drop),
            "response-outparam": (RESPONSE_OUTPARAM, _drop),
            "incoming-response": (INCOMING_RESPONSE, _drop),
            "incoming-body": (INCOMING_BODY, _drop),
            "future-trailers": (FUTURE_TRAILERS, _drop),
            "outgoing-response": (OUTGOING_RESPONSE, _drop),
            "outgoing-body": (OUTGOING_BODY, _outgoing_body_drop),
            "future-incoming-response": (FUTURE_INCOMING_RESPONSE, _drop),
        }
        funcs = {
            "http-error-code": _http_error_code,
            "[constructor]fields": _fields_new,
            "[static]fields.from-list": _fields_from_list,
            "[method]fields.get": _fields_get,
            "[method]fields.has": _fields_has,
            "[method]fields.set": _fields_set,
            "[method]fields.delete": _fields_delete,
            "[method]fields.append": _fields_append,
            "[method]fields.entries": _fields_entries,
            "[method]fields.clone": _fields_clone,
            "[method]incoming-request.method": _req_method,
            "[method]incoming-request.path-with-query": _req_path,
            "[method]incoming-request.scheme": _req_scheme,
            "[method]incoming-request.authority": _req_authority,
            "[method]incoming-request.headers": _req_headers,
            "[method]incoming-request.consume": _req_consume,
            "[method]incoming-body.stream": _body_stream,
            "[static]incoming-body.finish": _body_finish,
            "[method]future-trailers.subscribe": _trailers_subscribe,
            "[method]future-trailers.get": _trailers_get,
            "[constructor]outgoing-response": _resp_new,
            "[method]outgoing-response.status-code": _resp_status,
            "[method]outgoing-response.set-status-code": _resp_set_status,
            "[method]outgoing-response.headers": _resp_headers,
            "[method]outgoing-response.body": _resp_body,
            "[method]outgoing-body.write": _body_write,
            "[static]outgoing-body.finish": _outgoing_body_finish,
            "[static]response-outparam.set": _outparam_set,
            "[constructor]outgoing-request": _oreq_new,
            "[method]outgoing-request.body": _oreq_body,
            "[method]outgoing-request.method": _oreq_get("method", method_value),
            "[method]outgoing-request.set-method": _oreq_set("method", method_name),
            "[method]outgoing-request.path-with-query": _oreq_get("path_with_query"),
            "[method]outgoing-request.set-path-with-query": _oreq_set("path_with_query"),
            "[method]outgoing-request.scheme": _oreq_get("scheme", scheme_value),
            "[method]outgoing-request.set-scheme": _oreq_set("scheme", _scheme_name),
            "[method]outgoing-request.authority": _oreq_get("authority"),
            "[method]outgoing-request.set-authority": _oreq_set("authority"),
            "[method]outgoing-request.headers": lambda store, self: own(
                context.current().table.push(_oreq(store, self).headers.view()), FIELDS
            ),
            "[constructor]request-options": _options_new,
            "[method]request-options.connect-timeout": _opt_get("connect_timeout"),
            "[method]request-options.set-connect-timeout": _opt_set("connect_timeout"),
            "[method]request-options.first-byte-timeout": _opt_get("first_byte_timeout"),
            "[method]request-options.set-first-byte-timeout": _opt_set("first_byte_timeout"),
            "[method]request-options.between-bytes-timeout": _opt_get("between_bytes_timeout"),
            "[method]request-options.set-between-bytes-timeout": _opt_set("between_bytes_timeout"),
            "[method]incoming-response.status": _iresp_status,
            "[method]incoming-response.headers": _iresp_headers,
            "[method]incoming-response.consume": _iresp_consume,
            "[method]future-incoming-response.subscribe": _fut_subscribe,
            "[method]future-incoming-response.get": _fut_get,
        }
        return InterfaceImpl(resources=resources, funcs=funcs)


def new_incoming_request(request: GuestRequest) -> Any:
    return own(context.current().table.push(WasiIncomingRequest(request)), INCOMING_REQUEST)


def new_response_outparam() -> Any:
    return own(context.current().table.push(ResponseOutparam()), RESPONSE_OUTPARAM)
