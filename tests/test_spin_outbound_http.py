"""Outbound HTTP client: allow-list before any connection, streaming, reuse, errors (real sockets)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from runtime.spin.allowed_hosts import AllowedHosts
from runtime.spin.outbound_http import (
    OutboundErrorKind,
    OutboundHttpClient,
    OutboundHttpError,
    SelfOrigin,
    Timeouts,
)


class Upstream:
    """A loopback HTTP server that records every request and every accepted connection."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.connections = 0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                upstream.connections += 1
                # Headers and body go out in two writes: without NODELAY, Nagle + delayed ACK
                # add ~40 ms per response on loopback (it would dominate any timing).
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                super().setup()

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if self.headers.get("transfer-encoding") == "chunked":
                    body = b""
                    while True:
                        size = int(self.rfile.readline().strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        body += self.rfile.read(size)
                        self.rfile.readline()
                else:
                    body = self.rfile.read(length)
                upstream.requests.append((self.command, self.path, dict(self.headers.items()), body))
                if self.path == "/hang":
                    threading.Event().wait(5)
                payload = b"echo:" + body if self.path != "/big" else b"x" * (1 << 20)
                self.send_response(201)
                self.send_header("content-length", str(len(payload)))
                self.send_header("x-upstream", "yes")
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


@pytest.fixture
def client() -> Iterator[OutboundHttpClient]:
    c = OutboundHttpClient()
    yield c
    c.close()


def test_allowed_request_round_trip_and_connection_reuse(upstream: Upstream, client: OutboundHttpClient) -> None:
    allowed = AllowedHosts.parse([f"http://127.0.0.1:{upstream.port}"])
    for i in range(3):
        resp = client.send("POST", f"http://127.0.0.1:{upstream.port}/p?q={i}", [("x-a", "1")], b"hi", allowed)
        assert resp.status == 201
        assert ("x-upstream", "yes") in resp.headers
        assert resp.read() == b"echo:hi"
        resp.close()
    assert [r[1] for r in upstream.requests] == ["/p?q=0", "/p?q=1", "/p?q=2"]
    method, _, headers, body = upstream.requests[0]
    assert (method, body, headers.get("x-a")) == ("POST", b"hi", "1")
    # no httpx defaults added on the guest's behalf
    assert "Accept-Encoding" not in headers and "User-Agent" not in headers
    assert upstream.connections == 1


def test_denied_destination_never_connects(upstream: Upstream, client: OutboundHttpClient) -> None:
    for entries in ([], ["http://127.0.0.1:1"], [f"https://127.0.0.1:{upstream.port}"], ["http://localhost:*"]):
        with pytest.raises(OutboundHttpError) as err:
            client.send("GET", f"http://127.0.0.1:{upstream.port}/x", [], None, AllowedHosts.parse(entries))
        assert err.value.kind is OutboundErrorKind.DENIED
    assert upstream.requests == [] and upstream.connections == 0


def test_streaming_request_and_response_bodies(upstream: Upstream, client: OutboundHttpClient) -> None:
    allowed = AllowedHosts.parse(["http://127.0.0.1:*"])

    def chunks() -> Iterator[bytes]:
        yield b"a" * 1000
        yield b"b" * 1000

    resp = client.send("PUT", f"http://127.0.0.1:{upstream.port}/s", [], chunks(), allowed)
    assert resp.read() == b"echo:" + b"a" * 1000 + b"b" * 1000
    big = client.send("GET", f"http://127.0.0.1:{upstream.port}/big", [], None, allowed)
    pieces = list(big.body())
    assert len(pieces) > 1 and sum(map(len, pieces)) == 1 << 20
    big.close()


def test_self_requests(upstream: Upstream, client: OutboundHttpClient) -> None:
    origin = SelfOrigin("http", f"127.0.0.1:{upstream.port}", "/mount")
    with pytest.raises(OutboundHttpError) as err:
        client.send("GET", "/api", [], None, AllowedHosts.parse(["*://example.com:*"]), origin)
    assert err.value.kind is OutboundErrorKind.DENIED
    resp = client.send("GET", "/api?x=1", [], None, AllowedHosts.parse(["http://self"]), origin)
    assert resp.status == 201
    assert upstream.requests[-1][1] == "/mount/api?x=1"


def test_connection_refused_and_timeout(upstream: Upstream, client: OutboundHttpClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    allowed = AllowedHosts.parse(["http://127.0.0.1:*"])
    with pytest.raises(OutboundHttpError) as refused:
        client.send("GET", f"http://127.0.0.1:{closed_port}/", [], None, allowed)
    assert refused.value.kind is OutboundErrorKind.CONNECTION_REFUSED
    with pytest.raises(OutboundHttpError) as timeout:
        client.send("GET", f"http://127.0.0.1:{upstream.port}/hang", [], None, allowed,
                    timeouts=Timeouts(connect_s=5, first_byte_s=0.2, between_bytes_s=0.2))
    assert timeout.value.kind is OutboundErrorKind.RESPONSE_TIMEOUT
