"""Outbound HTTP client: allow-list before any connection, streaming, reuse, errors (real sockets)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from runtime.capabilities.outbound_http.client import (
    OutboundErrorKind,
    OutboundHttpClient,
    OutboundHttpError,
    SelfOrigin,
    Timeouts,
)
from runtime.capabilities.support.allowed_hosts import AllowedHosts
from tests.support.upstream import Upstream


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


def test_block_networks_are_checked_after_dns_and_never_share_a_pooled_connection(upstream: Upstream) -> None:
    """An app's block list applies to every address its destination resolves to, and a
    connection an unblocked app left in the pool is not lent to it (a client per block list)."""
    from runtime.capabilities.outbound_http import host
    from runtime.capabilities.support.blocked_networks import BlockedNetworks

    allowed = AllowedHosts.parse([f"http://127.0.0.1:{upstream.port}", f"http://localhost:{upstream.port}"])
    open_client = host.client()
    resp = open_client.send("GET", f"http://127.0.0.1:{upstream.port}/warm", [], None, allowed)
    resp.read()
    resp.close()
    assert upstream.connections == 1  # and it stays in open_client's pool
    blocked = host.client(BlockedNetworks.parse(["127.0.0.0/8", "::1/128"]))
    assert blocked is not open_client and blocked is host.client(BlockedNetworks.parse(["127.0.0.0/8", "::1/128"]))
    for url in (f"http://127.0.0.1:{upstream.port}/x", f"http://localhost:{upstream.port}/x"):
        with pytest.raises(OutboundHttpError) as info:
            blocked.send("GET", url, [], None, allowed)
        assert info.value.kind is OutboundErrorKind.DESTINATION_PROHIBITED
    assert upstream.connections == 1 and [r[1] for r in upstream.requests] == ["/warm"]
    other = host.client(BlockedNetworks.parse(["10.0.0.0/8"]))  # blocks what this destination is not
    resp = other.send("GET", f"http://localhost:{upstream.port}/ok", [], None, allowed)
    resp.read()
    resp.close()
    assert [r[1] for r in upstream.requests] == ["/warm", "/ok"]
