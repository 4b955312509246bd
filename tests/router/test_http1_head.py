"""router.http1_head: the HTTP/1 response head, completed (reason phrase, Date), and written with
the body in one socket write inside head_with_body(). The protocol runs on a real h11 connection;
what it hands to hypercorn's TCP server (its `send`) is recorded."""

from __future__ import annotations

import asyncio

import h11
from hypercorn.events import RawData

from router.http1_head import LeptonH11Protocol, head_with_body


def _protocol() -> tuple[LeptonH11Protocol, list[bytes]]:
    """A LeptonH11Protocol with a GET read from the client, and the writes it makes."""
    writes: list[bytes] = []

    async def send(event: object) -> None:
        assert isinstance(event, RawData)
        writes.append(event.data)

    protocol = object.__new__(LeptonH11Protocol)  # (only the connection and send are used here)
    protocol.connection = h11.Connection(h11.SERVER)
    protocol.send = send
    protocol.connection.receive_data(b"GET / HTTP/1.1\r\nhost: a.test\r\n\r\n")
    assert isinstance(protocol.connection.next_event(), h11.Request)
    assert isinstance(protocol.connection.next_event(), h11.EndOfMessage)
    return protocol, writes


HEAD = h11.Response(status_code=200, headers=[(b"content-length", b"5"), (b"date", b"x")])


def test_inside_head_with_body_the_head_and_body_are_one_write() -> None:
    async def run() -> list[bytes]:
        protocol, writes = _protocol()
        async with head_with_body():
            await protocol._send_h11_event(HEAD)
            assert writes == []  # held back for the body
            await protocol._send_h11_event(h11.Data(data=b"hello"))
            await protocol._send_h11_event(h11.EndOfMessage())
        return writes

    writes = asyncio.run(run())
    assert len(writes) == 1, writes
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\nhello")


def test_elsewhere_the_head_goes_out_at_once() -> None:
    async def run() -> list[bytes]:
        protocol, writes = _protocol()
        await protocol._send_h11_event(HEAD)
        assert len(writes) == 1  # a streamed response: the client sees the head before any body
        await protocol._send_h11_event(h11.Data(data=b"hello"))
        await protocol._send_h11_event(h11.EndOfMessage())
        return writes

    writes = asyncio.run(run())
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and b"".join(writes[1:]) == b"hello"


def test_a_head_with_no_body_event_after_it_still_goes_out() -> None:
    async def run() -> list[bytes]:
        protocol, writes = _protocol()
        async with head_with_body():
            await protocol._send_h11_event(HEAD)
        return writes

    writes = asyncio.run(run())
    assert len(writes) == 1 and writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
