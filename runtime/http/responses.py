"""The responses the host makes itself (errors, static routes) and how guest faults map to them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import wasmtime

from runtime.core.guest_io import GuestRequest
from runtime.errors import DeadlineExceeded
from runtime.types import OutgoingResponse


def is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, DeadlineExceeded):
        return True
    # The epoch deadline surfaces as this trap ("interrupt" alone could be a guest function name).
    return isinstance(exc, wasmtime.WasmtimeError) and "wasm trap: interrupt" in str(exc)


def first_line(exc: BaseException) -> str:
    text = str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    causes = [line for line in lines if line.startswith("wasm trap") or "trap" in line.lower()]
    detail = causes[-1] if causes else (lines[-1] if lines else "")
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def describe(request: GuestRequest) -> str:
    """How log lines name a request: method and the full path as the client sent it."""
    query = f"?{request.query}" if request.query else ""
    return f"{request.method} {request.full_path}{query}"


async def body_of(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


def simple_response(status: int, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()) -> OutgoingResponse:
    """A response the host makes itself; its headers are text (Spin's static and reserved ones)."""
    encoded = [(name, encode_header(value)) for name, value in headers]
    return OutgoingResponse(status=status, headers=encoded, body=body_of(body), whole_body=body)


def may_add_content_length(method: str, status: int, headers: Sequence[tuple[str, bytes]]) -> bool:
    if method == "HEAD" or status < 200 or status in (204, 304):
        return False
    return not any(name.lower() in ("content-length", "transfer-encoding") for name, _ in headers)


def encode_header(value: str) -> bytes:
    """Text the host puts in a header: latin-1 as HTTP/1.1 has it, UTF-8 for anything beyond."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")

