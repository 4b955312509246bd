"""The wasi:http/incoming-handler@0.2.x executor (Spin's default for components)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wasmtime import Store

from runtime.capabilities.wasi.http import RESPONSE_BODY, new_incoming_request, new_response_outparam
from runtime.core import context
from runtime.core.contract import ComponentInfo
from runtime.core.guest import PreparedGuest
from runtime.core.guest_io import GuestRequest, ResponseSink
from runtime.core.reuse import KeptInstance

INCOMING_HANDLER = "wasi:http/incoming-handler"


class NoResponse(Exception):
    """The guest returned without setting a response ("guest failed to produce a response")."""


class IncomingHandlerExecutor:
    name = "wasi-http"
    blocking = False
    reuses_instances = True  # honours max_instance_reuse_count (runtime/core/reuse.py)
    makes_spares = True  # fresh instances come from guest.fresh_instance (runtime/core/spares.py)

    def __init__(self, export_name: str) -> None:
        self.export_name = export_name  # e.g. "wasi:http/incoming-handler@0.2.3"

    def run(self, guest: PreparedGuest, request: GuestRequest, response: ResponseSink) -> None:
        ctx = context.current()
        ctx.response = response
        ctx.request = request  # for host APIs that need it (Spin self requests' origin)
        reuse = guest.reuse
        if reuse is None:  # a fresh instance, owned by the request (closed with it)
            store, instance = guest.fresh_instance(ctx, ctx.remaining())
            self._handle(guest, store, instance, request, response)
            return
        kept = reuse.take()
        if kept is None:
            kept = KeptInstance(*guest.new_instance(ctx.remaining()))
        else:
            guest.renew_store(kept.store, ctx.remaining())
        try:
            self._handle(guest, kept.store, kept.instance, request, response)
        except BaseException:
            kept.store.close()  # a trap, a timeout, no response: never reused
            raise
        reuse.give_back(kept)

    def _handle(self, guest: PreparedGuest, store: Store, instance: Any, request: GuestRequest,
                response: ResponseSink) -> None:
        ctx = context.current()
        func, sig = guest.export(store, instance, self.export_name, "handle")
        sig.call(func, store, new_incoming_request(request), new_response_outparam())
        func.post_return(store)
        if not response.started:
            raise NoResponse("guest failed to produce a response")
        body = ctx.get(RESPONSE_BODY)
        if body is not None and not body.finished:
            # Returned without outgoing-body.finish: what was written is the whole body.
            body.finish()
        response.finish()  # (a no-op if the body's finish already ended the response)


class WasiHttpProvider:
    """Claims components exporting wasi:http/incoming-handler (any 0.2.x) under an http executor."""

    def select(self, info: ComponentInfo, executor_config: Mapping[str, Any] | None) -> IncomingHandlerExecutor | None:
        if info.kind != "component":
            return None
        kind = (executor_config or {}).get("type", "http")
        if kind not in ("http", "spin"):
            return None
        export = info.exports_interface(INCOMING_HANDLER)
        return IncomingHandlerExecutor(export) if export is not None else None
