"""The `fermyon:spin/inbound-http` executor (Spin 2 SDK components, componentized Spin 1.x apps).

As Spin v3's `crates/trigger-http/src/spin.rs`: the request is one record, fully buffered
(`{method, uri: path+query, headers: original + spin-*, params: [], body: some(bytes)}`);
methods other than GET POST PUT DELETE PATCH HEAD OPTIONS get 405 without running the guest; a
status outside 100..=600 becomes an empty 500; response headers are inserted (for a repeated
name the last value wins); the response body is sent in one piece.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wasmtime import Store

from runtime.capabilities.support.wit import record
from runtime.core import context
from runtime.core.context import RequestContext
from runtime.core.contract import ComponentInfo
from runtime.core.guest import PreparedGuest
from runtime.core.guest_io import GuestRequest, ResponseSink

INBOUND_HTTP = "fermyon:spin/inbound-http"
INCOMING_HANDLER = "wasi:http/incoming-handler"
METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})


class InboundHttpError(Exception):
    """The request or the guest's response cannot be expressed (-> 500)."""


def response_headers(headers: Any) -> list[tuple[str, bytes]]:
    """The guest's `option<list<tuple<string,string>>>` as response headers, last value wins."""
    merged: dict[str, tuple[str, bytes]] = {}
    for name, value in headers or []:
        lower = str(name).lower()
        if not lower or any(c in lower for c in ' \t\r\n:"(),/;<=>?@[\\]{}') or not lower.isascii():
            raise InboundHttpError(f"invalid response header name {name!r}")
        if any(c in str(value) for c in "\r\n\0"):
            raise InboundHttpError(f"invalid value for response header {name!r}")
        merged[lower] = (lower, str(value).encode("utf-8"))
    return list(merged.values())


def status_ok(status: int) -> bool:
    return 100 <= status <= 600


@dataclass(frozen=True)
class BufferedRun:
    """A request as both inbound-http ABIs (component and Spin 1.x module) take it, and the Store
    to run the guest in."""

    ctx: RequestContext
    headers: list[tuple[str, str]]  # as strings (the ABIs carry no bytes)
    body: bytes  # whole
    store: Store


def start_buffered_run(guest: PreparedGuest, request: GuestRequest, response: ResponseSink) -> BufferedRun | None:
    """Read the whole request and make the guest's Store. None for a method Spin does not carry:
    the 405 has been sent and the guest must not run."""
    if request.method not in METHODS:
        response.start(405, [])
        response.finish()
        return None
    try:
        headers = [(name, value.decode("utf-8")) for name, value in request.headers]
    except UnicodeDecodeError as exc:
        raise InboundHttpError(f"request header is not UTF-8: {exc}") from None
    ctx = context.current()
    if request.body.complete:  # (read ahead, as for every inline run: nothing to wait for)
        body = request.body.read_all(ctx.deadline)
    else:
        with ctx.waiting():  # the whole body: it may still be arriving
            body = request.body.read_all(ctx.deadline)
    return BufferedRun(ctx, headers, body, guest.new_store(ctx, ctx.remaining()))


class InboundHttpExecutor:
    name = "spin-inbound-http"
    blocking = False
    reuses_instances = False  # a fresh instance per request, whatever the app asks
    makes_spares = False

    def __init__(self, export_name: str) -> None:
        self.export_name = export_name

    def run(self, guest: PreparedGuest, request: GuestRequest, response: ResponseSink) -> None:
        run = start_buffered_run(guest, request, response)
        if run is None:
            return
        ctx, headers, body, store = run.ctx, run.headers, run.body, run.store
        instance = guest.instantiate(store)
        func, sig = guest.export(store, instance, self.export_name, "handle-request")
        req = record(
            method=request.method.lower(), uri=request.path_with_query, headers=headers, params=[], body=body
        )
        resp = sig.call(func, store, req)
        func.post_return(store)
        status = int(resp.status)
        if not status_ok(status):
            ctx.log.error("guest returned a malformed HTTP status code %d", status)
            response.start(500, [])
            response.finish()
            return
        out_headers = response_headers(getattr(resp, "headers", None))
        response.start(status, out_headers)
        payload = getattr(resp, "body", None)
        if payload:
            response.write(bytes(payload), ctx.deadline)
        response.finish()


class InboundHttpProvider:
    """Claims components exporting fermyon:spin/inbound-http (and not wasi:http, which wins)."""

    def select(self, info: ComponentInfo, executor_config: Mapping[str, Any] | None) -> InboundHttpExecutor | None:
        if info.kind != "component":
            return None
        if (executor_config or {}).get("type", "http") not in ("http", "spin"):
            return None
        if info.exports_interface(INCOMING_HANDLER) is not None:
            return None
        export = info.exports_interface(INBOUND_HTTP)
        return InboundHttpExecutor(export) if export is not None else None
