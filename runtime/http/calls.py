"""The HTTP trigger's side of in-process calls (runtime.capabilities.outbound_http.in_process):
for each request, where its guest's calls to a sibling component, to its own app and to another
app of this server go, and the request each callee sees.

* ``<id>.spin.internal``: the component itself, whatever its route (private ones included), as
  Spin's synthetic route match: route ``/...``, the whole path as path info, scheme ``http``, the
  URL's authority, no Host header, client ``0.0.0.0:0``.
* a relative URL: the app's own routes, as if the request had come in on the origin (scheme, Host,
  mount prefix) of the request being served, which is where Spin sends it over a socket.
* ``<app>.lepton.internal``: the host's AppDirectory (the router), which checks ``allow_callers``
  and serves the request on the callee's routes as if it came in on the shared port with that
  Host, no mount prefix; the callee's guest sees the caller's name in ``lepton-caller-app``.

Each call's request carries a CallChain one deeper than the caller's, with the caller's deadline.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from runtime.capabilities.outbound_http.in_process import CHAINED_CLIENT_ADDR, Call, Target, TargetKind
from runtime.http.spin_headers import normalize_prefix
from runtime.types import AppCallRefused, AppDirectory, CallChain, IncomingRequest, OutgoingResponse

if TYPE_CHECKING:
    from runtime.http.app import RunningApp


class RequestCalls:
    """The in-process calls of one request (runtime.capabilities.outbound_http.in_process.InProcessCalls)."""

    __slots__ = ("_app", "_directory", "_host", "_mount_prefix", "_scheme", "_served_as", "depth", "loop")

    def __init__(
        self,
        app: RunningApp,
        loop: asyncio.AbstractEventLoop,
        request: IncomingRequest,
        directory: AppDirectory | None,
    ) -> None:
        self._app = app
        self.loop = loop
        self.depth = request.chain.depth if request.chain is not None else 0
        self._served_as = request.served_as
        self._scheme = request.scheme
        self._host = request.host
        self._mount_prefix = normalize_prefix(request.mount_prefix)
        self._directory = directory

    async def call(self, target: Target, call: Call) -> OutgoingResponse:
        path, _, query = call.path_with_query.partition("?")
        if not path.startswith("/"):
            path = "/" + path
        if target.kind is TargetKind.COMPONENT:
            return await self._app.handle_component(target.name, self._request(
                call, scheme="http", host=call.authority, path=path, query=query, headers=call.headers,
            ))
        if target.kind is TargetKind.SELF:
            return await self._app.handle(self._request(
                call, scheme=self._scheme, host=self._host, path=self._mount_prefix + path, query=query,
                headers=_with_host(call.headers, self._host), mount_prefix=self._mount_prefix,
            ))
        if self._directory is None or not self._served_as:
            raise AppCallRefused("apps are not served by name here: no other app can be called")
        request = self._request(
            call, scheme="http", host=call.authority, path=path, query=query,
            headers=_with_host(call.headers, call.authority), caller_app=self._served_as, served_as=target.name,
        )
        return await self._directory.call(self._served_as, target.name, request)

    def _request(self, call: Call, *, scheme: str, host: str, path: str, query: str,
                 headers: list[tuple[str, bytes]], mount_prefix: str = "", caller_app: str = "",
                 served_as: str | None = None) -> IncomingRequest:
        return IncomingRequest(
            method=call.method,
            scheme=scheme,
            host=host,
            path=path,
            query=query,
            headers=headers,
            client_addr=CHAINED_CLIENT_ADDR,
            body=call.body,
            mount_prefix=mount_prefix,
            content_length=call.content_length,
            served_as=self._served_as if served_as is None else served_as,
            chain=CallChain(depth=self.depth + 1, deadline=call.deadline, caller_app=caller_app),
        )


def _with_host(headers: list[tuple[str, bytes]], host: str) -> list[tuple[str, bytes]]:
    """The Host a request over a socket to `host` would carry (the guest's own was dropped)."""
    return [("host", host.encode("latin-1", "replace")), *headers] if host else headers
