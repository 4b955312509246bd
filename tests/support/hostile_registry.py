"""Registry-like peers that misbehave, on 127.0.0.1 only, for the reliability tests (issue 11).

* `HangingListener()`: a TCP listener that accepts connections and never answers (nor reads a
  byte). `.host` is "127.0.0.1:PORT"; `.close()` drops every connection, which also frees a client
  that would otherwise wait forever (old code, in a regression run).
* `LyingRegistry()`: a tiny distribution-API server whose answers the test scripts.
  `.manifests[tag] = Body(...)`, `.blobs[digest] = Body(...)`; a `Body` is fixed bytes or a chunk
  generator, with the Content-Length it announces (or none). `.sent[path]` counts the body bytes
  actually written per path, `.requests` lists the paths asked for. `bearer_realm` makes every
  /v2/ request answer 401 with a Bearer challenge pointing there (e.g. at a HangingListener).

Both are context managers; servers run on daemon threads and are bounded (a generator body should
stop by itself: `endless(limit)` does).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.support.server import free_port

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class HangingListener:
    def __init__(self, port: int | None = None) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port or free_port()))
        self._sock.listen(128)
        self.port = self._sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="hanging-listener")
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.accepted.append(conn)  # held open, never read from or written to

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        for conn in self.accepted:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HangingListener:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass
class Body:
    data: bytes | Callable[[], Iterator[bytes]]
    content_length: int | None = None  # announced; None: the length of `data` if bytes, else none
    content_type: str = "application/octet-stream"


def endless(limit: int, chunk: int = 64 * 1024, delay_s: float = 0.0) -> Callable[[], Iterator[bytes]]:
    """A body of `limit` bytes of filler (an "endless" one, for a test), `delay_s` between chunks."""

    def gen() -> Iterator[bytes]:
        block = b"\xab" * chunk
        sent = 0
        while sent < limit:
            piece = block[: min(chunk, limit - sent)]
            yield piece
            sent += len(piece)
            if delay_s:
                time.sleep(delay_s)

    return gen


def manifest_json(config: dict[str, Any], layers: list[dict[str, Any]]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}).encode()


def descriptor(data: bytes, media_type: str, size: int | None = None) -> dict[str, Any]:
    """A descriptor for `data`, declaring `size` (default: its real size)."""
    return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
            "size": len(data) if size is None else size}


@dataclass
class LyingRegistry:
    manifests: dict[str, Body] = field(default_factory=dict)
    blobs: dict[str, Body] = field(default_factory=dict)
    bearer_realm: str | None = None
    sent: Counter[str] = field(default_factory=Counter)
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                owner._handle(self)

            def do_HEAD(self) -> None:
                owner._handle(self, head=True)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="lying-registry")
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def _handle(self, h: http.server.BaseHTTPRequestHandler, head: bool = False) -> None:
        path = h.path.split("?", 1)[0]
        self.requests.append(path)
        if self.bearer_realm is not None:
            self._send(h, 401, Body(b'{"errors":[{"code":"UNAUTHORIZED","message":"token"}]}'), head,
                       {"WWW-Authenticate": f'Bearer realm="{self.bearer_realm}",service="lying",'
                                            'scope="repository:x:pull"'})
            return
        body: Body | None = None
        if path in ("/v2/", "/v2"):
            body = Body(b"{}", content_type="application/json")
        elif "/manifests/" in path:
            body = self.manifests.get(path.rsplit("/manifests/", 1)[1])
        elif "/blobs/" in path:
            body = self.blobs.get(path.rsplit("/blobs/", 1)[1])
        if body is None:
            self._send(h, 404, Body(b'{"errors":[{"code":"NOT_FOUND","message":"unknown"}]}'), head)
            return
        self._send(h, 200, body, head)

    def _send(self, h: http.server.BaseHTTPRequestHandler, status: int, body: Body, head: bool,
              headers: dict[str, str] | None = None) -> None:
        path = h.path.split("?", 1)[0]
        h.send_response(status)
        h.send_header("Content-Type", body.content_type)
        length = body.content_length
        if length is None and isinstance(body.data, bytes):
            length = len(body.data)
        if length is not None:
            h.send_header("Content-Length", str(length))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        if not isinstance(body.data, bytes) or length is None:
            h.send_header("Connection", "close")  # the body ends when the connection does
            h.close_connection = True
        h.end_headers()
        if head:
            return
        chunks = [body.data] if isinstance(body.data, bytes) else body.data()
        try:
            for chunk in chunks:
                h.wfile.write(chunk)
                self.sent[path] += len(chunk)
            h.wfile.flush()
        except OSError:  # the client hung up: that is what most tests want
            h.close_connection = True

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LyingRegistry:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
