"""Helpers for runtime tests: build IncomingRequests, read OutgoingResponses, WAT fixture paths."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

from runtime.types import IncomingRequest, OutgoingResponse

WAT_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "wat"
HELLO_WAT = WAT_DIR / "hello.wat"
GUEST_WAT = WAT_DIR / "guest.wat"


async def body_of(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def request(
    path: str = "/",
    *,
    method: str | None = None,
    body: bytes | None = None,
    chunks: AsyncIterator[bytes] | None = None,
    query: str = "",
    host: str = "example.com",
    headers: Sequence[tuple[str, str]] = (),
    mount_prefix: str = "",
    client_addr: tuple[str, int] = ("127.0.0.1", 40000),
    scheme: str = "http",
) -> IncomingRequest:
    """A request as the router hands it over (header values as bytes; `headers` given as text
    for readability). `chunks` streams a body of unknown length."""
    all_headers = [("host", host), *headers]
    content_length = None
    if chunks is not None:
        all_headers.append(("transfer-encoding", "chunked"))
        stream = chunks
    else:
        stream = body_of([body] if body else [])
        if body is not None:
            content_length = len(body)
            all_headers.append(("content-length", str(len(body))))
    return IncomingRequest(
        method=method or ("POST" if body is not None or chunks is not None else "GET"),
        scheme=scheme,
        host=host,
        path=path,
        query=query,
        headers=[(name, value.encode("utf-8")) for name, value in all_headers],
        client_addr=client_addr,
        body=stream,
        mount_prefix=mount_prefix,
        content_length=content_length,
    )


async def read(response: OutgoingResponse) -> bytes:
    return b"".join([chunk async for chunk in response.body])


def header(response: OutgoingResponse, name: str) -> str | None:
    """The last value of `name`, as text (latin-1, as the bytes came)."""
    values = [v for n, v in response.headers if n == name]
    return values[-1].decode("latin-1") if values else None


async def instance_count(running: Any) -> int:
    """The WAT guest's /count: how many /count requests its instance has served (x-count)."""
    response = await running.handle(request("/count"))
    await read(response)
    assert response.status == 200
    value = header(response, "x-count")
    assert value is not None
    return int(value)
