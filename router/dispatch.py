"""The data plane: one ASGI HTTP request -> routing table -> runtime, bodies streamed both ways.

This runs at the ASGI level rather than through a Quart view because it is on every request's
path: it avoids building a Quart request context, and it passes status, headers and body bytes
through untouched (Quart would add a default content type, cap bodies with MAX_CONTENT_LENGTH, and
buffer for `request.get_data`). The request body is handed to the guest as an async iterator over
ASGI `http.request` messages, so it is read as the guest asks for it (backpressure reaches the
client); the response is sent chunk by chunk as the guest writes it.

With OpenTelemetry traces on (router/telemetry.py), each request an app serves has a server span,
from the route match to the end of the response body; with them off, one attribute test.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import runtime.telemetry as telemetry
from router import telemetry as otel
from router.asgi import Receive, Scope, Send, end_unread
from router.http1_head import head_with_body
from router.manager import AppManager
from router.proxy import TrustedProxies, client_view
from router.table import request_host
from runtime.types import IncomingRequest, OutgoingResponse

log = logging.getLogger("lepton.router")

# Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection; the server sets its own.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}
)

NOT_FOUND = b"not found\n"
DRAIN_TIMEOUT_S = 30.0  # reading an unread request body to its end after the response
BUSY = b"busy, retry later\n"


class ClientDisconnected(ConnectionError):
    """The client went away before sending its whole request body."""


class _Inbound:
    """Reads the request body from ASGI `receive` on demand and notices a client disconnect."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.done = False
        self.disconnected = False
        self.received = 0  # body bytes read so far
        self._first: dict[str, Any] | None = None  # a message read ahead by skip_empty_body

    async def body(self) -> AsyncIterator[bytes]:
        while not self.done:
            if self._first is not None:
                message, self._first = self._first, None
            else:
                message = await self.receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                self.done = True
                raise ClientDisconnected("client disconnected before the request body ended")
            chunk = message.get("body", b"")
            self.received += len(chunk)
            if not message.get("more_body", False):
                self.done = True
            if chunk:
                yield chunk

    async def skip_empty_body(self) -> None:
        message = await self.receive()
        if message["type"] == "http.disconnect":
            self.disconnected = True
        elif message.get("body") or message.get("more_body"):
            # Not empty after all (e.g. HTTP/2 DATA without content-length): hand it to the guest.
            self._first = message
            return
        self.done = True

    async def drain(self, limit: int) -> bool:
        """Read and drop the rest of the body. False once more than `limit` bytes came in all."""
        while not self.done:
            if self.received > limit:
                return False
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                self.done = True
            else:
                self.received += len(message.get("body", b""))
                if not message.get("more_body", False):
                    self.done = True
        return True

    async def wait_disconnect(self) -> None:
        """After the body: the only message left is http.disconnect (when the client goes)."""
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                return


def _text_response(status: int, body: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())],
        },
        {"type": "http.response.body", "body": body, "more_body": False},
    )


class Dispatcher:
    def __init__(self, manager: AppManager, trusted: TrustedProxies) -> None:
        self.manager = manager
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        path = raw_path.decode("latin-1")
        # Names as text (ASGI servers give them lower-cased); values stay bytes all the way to the
        # guest: only what routing reads is decoded (router.proxy.client_view).
        headers = [(k.decode("latin-1").lower(), v) for k, v in scope["headers"]]
        client = scope.get("client") or ("0.0.0.0", 0)
        view = client_view((client[0], client[1]), scope["scheme"], headers, self.trusted)
        route = self.manager.table.lookup(request_host(view.host), path)
        if route is None:
            self.manager.unmatched += 1
            for message in _text_response(404, NOT_FOUND):
                await send(message)
            return

        endpoint = route.target
        stats = endpoint.stats
        traced = None if telemetry.recorder is None else otel.server_span(scope, headers, view, path, route.app)
        limit = endpoint.config.max_concurrent
        if limit is not None and stats.inflight >= limit:
            stats.rejected += 1
            start, body = _text_response(503, BUSY)
            start["headers"].append((b"retry-after", b"1"))
            try:
                await send(start)
                await send(body)
            finally:
                if traced is not None:
                    traced.finish(503)
            return

        version = endpoint.version
        version.acquire()
        stats.inflight += 1
        started = self.manager.last_request_at = time.perf_counter()
        status = 500
        try:
            content_length = None
            chunked = False
            for key, value in headers:
                if key == "content-length":
                    content_length = int(value) if value.isdigit() else None  # (bytes.isdigit: ASCII only)
                elif key == "transfer-encoding":
                    chunked = True
            inbound = _Inbound(receive)
            if not chunked and not content_length:
                # No body: take the (empty) end-of-body message now, so that once the response
                # streams, the only message left to wait for is the client's disconnect.
                await inbound.skip_empty_body()
                if inbound.disconnected:
                    status = 499  # nginx's "client closed request": nobody to answer
                    return
                if inbound.done:
                    content_length = 0  # known empty: the runtime need not read it
            request = IncomingRequest(
                method=scope["method"],
                scheme=view.scheme,
                host=view.host,
                path=path,
                query=scope.get("query_string", b"").decode("latin-1"),
                headers=headers,
                client_addr=view.addr,
                body=inbound.body(),
                mount_prefix=route.prefix,
                content_length=content_length,
                http_version=scope.get("http_version", "1.1"),
                served_as=route.app,
            )
            try:
                response = await version.handler.handle(request)
            except Exception:
                # The runtime maps guest faults to responses itself; this is a host bug. Keep serving.
                log.exception("app %s: request handling failed", route.app)
                for message in _text_response(500, b""):
                    await send(message)
                return
            status = response.status
            await self._send_response(response, inbound, send, route.app, request.http_version,
                                      endpoint.config.max_body_bytes)
        finally:
            stats.inflight -= 1
            stats.record(status, time.perf_counter() - started)
            version.release()
            if traced is not None:
                traced.finish(status)

    async def _send_response(self, response: OutgoingResponse, inbound: _Inbound, send: Send, app: str,
                             http_version: str, max_body: int) -> None:
        headers = [
            (k.encode("latin-1"), v) for k, v in response.headers if k.lower() not in HOP_BY_HOP
        ]
        refused = response.status == 413 and not inbound.done
        if refused and http_version in ("1.0", "1.1"):
            # A body refused for its size is not worth reading to the end: close after answering.
            headers.append((b"connection", b"close"))
        start = {"type": "http.response.start", "status": response.status, "headers": headers}
        if response.whole_body is not None and inbound.done:
            # Nothing left to stream or to drain: head and body go out in one write to the socket.
            async with head_with_body():
                await send(start)
                await send({"type": "http.response.body", "body": response.whole_body, "more_body": False})
            return
        await send(start)
        body = response.body
        watcher: asyncio.Task[None] | None = None
        try:
            # Each chunk goes out as soon as the guest wrote it (no look-ahead: a streaming app
            # must not wait for its next write to flush the previous one).
            chunks = 0
            async for chunk in body:
                if inbound.disconnected:
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                chunks += 1
                if chunks == 2 and inbound.done:
                    # A streaming response: stop generating it if the client goes away.
                    watcher = asyncio.create_task(inbound.wait_disconnect())
            if not inbound.done and not refused:
                # The guest answered without reading the whole body. The server blocks delivering
                # body data nobody reads (the next request on an HTTP/1 connection would never be
                # seen), and ending the response first would close the HTTP/2 stream while the
                # client still sends on it: read and drop the rest first, as nginx does, up to the
                # app's max_body (past it the body is refused; reading on would ignore the limit).
                try:
                    if not await asyncio.wait_for(inbound.drain(max_body), DRAIN_TIMEOUT_S):
                        log.info("app %s: request body past max_body (%d bytes) left unread; closing the connection",
                                 app, max_body)
                except TimeoutError:
                    log.info("app %s: gave up reading an unread request body after %.0fs", app, DRAIN_TIMEOUT_S)
            last = {"type": "http.response.body", "body": b"", "more_body": False}
            if inbound.done:
                await send(last)
            else:
                # The rest of the body stays unread; HTTP/1 then closes the connection.
                await end_unread(inbound.receive, send, last)
        except Exception:
            # The guest failed after the status was sent. As Spin does, the body ends truncated:
            # returning without the final message makes the server close the connection, so the
            # client sees an incomplete response rather than a clean short one.
            log.exception("app %s: response body failed mid-stream; truncated", app)
        finally:
            if watcher is not None:
                watcher.cancel()
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    log.debug("closing the response body of %s failed", app, exc_info=True)
