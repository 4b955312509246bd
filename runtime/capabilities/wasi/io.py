"""wasi:io/{error,poll,streams}@0.2.x in Python, on per-request host objects, and lepton:io/latin1
(the byte bridge's string-carrying reads and writes, see runtime/engine/byte_bridge.py).

Streams and pollables are plain Python objects (subclasses below) kept in the request's resource
table; other interfaces (http bodies, files, stdout, Spin's outbound HTTP) create them with
`new_input_stream` / `new_output_stream` / `new_pollable` and hand the guest the handle.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable
from typing import Any

from runtime.core import context
from runtime.core.contract import BaseCapability, InterfaceImpl, resource_type_id
from runtime.core.values import own, rep, tag
from runtime.engine.byte_bridge import LATIN1_INTERFACE
from runtime.errors import GuestTrap

ERROR = resource_type_id("wasi:io/error", "error")
POLLABLE = resource_type_id("wasi:io/poll", "pollable")
INPUT_STREAM = resource_type_id("wasi:io/streams", "input-stream")
OUTPUT_STREAM = resource_type_id("wasi:io/streams", "output-stream")

MAX_READ = 1024 * 1024  # cap on one read's result, whatever length the guest asks for
BLOCKING_WRITE_MAX = 4096  # bytes one blocking-write(-zeroes)-and-flush call may carry (WIT)
POLL_SLICE = 0.005  # seconds between checks when waiting on several pollables at once


class IoError:
    def __init__(self, message: str) -> None:
        self.message = message


class StreamFailed(Exception):
    """The last operation failed: reported to the guest as last-operation-failed(error)."""


class StreamClosed(Exception):
    """The stream is closed: reported to the guest as `closed`."""


class Pollable:
    """Something the guest can wait on. `ready` must not block; `wait` blocks until ready or the
    deadline (then returns; callers re-check)."""

    def ready(self) -> bool:
        return True

    def wait(self, deadline: float) -> None:
        end = deadline
        while not self.ready():
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(POLL_SLICE, remaining))


class FnPollable(Pollable):
    def __init__(self, ready: Callable[[], bool], wait: Callable[[float], None] | None = None) -> None:
        self._ready = ready
        self._wait = wait

    def ready(self) -> bool:
        return self._ready()

    def wait(self, deadline: float) -> None:
        if self._wait is not None:
            self._wait(deadline)
        else:
            super().wait(deadline)


class InputStream:
    """Base input stream. `read` returns bytes (maybe b"" when nothing is ready and not blocking),
    None at end of stream, or raises StreamFailed."""

    def read(self, n: int, blocking: bool, deadline: float) -> bytes | None:
        raise NotImplementedError

    def pollable(self) -> Pollable:
        return Pollable()

    def close(self) -> None:
        pass


class BytesInputStream(InputStream):
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def read(self, n: int, blocking: bool, deadline: float) -> bytes | None:
        if self._pos >= len(self._data):
            return None
        chunk = bytes(self._data[self._pos : self._pos + n])
        self._pos += len(chunk)
        return chunk


class OutputStream:
    """Base output stream. Raise StreamClosed / StreamFailed to report errors."""

    def check_write(self) -> int:
        return MAX_READ

    def write(self, data: bytes, blocking: bool, deadline: float) -> None:
        raise NotImplementedError

    def flush(self, blocking: bool, deadline: float) -> None:
        pass

    def pollable(self) -> Pollable:
        return Pollable()

    def close(self) -> None:
        pass


def new_error(message: str) -> Any:
    return own(context.current().table.push(IoError(message)), ERROR)


def new_pollable(pollable: Pollable) -> Any:
    return own(context.current().table.push(pollable), POLLABLE)


def new_input_stream(stream: InputStream) -> Any:
    return own(context.current().table.push(stream), INPUT_STREAM)


def new_output_stream(stream: OutputStream) -> Any:
    return own(context.current().table.push(stream), OUTPUT_STREAM)


def _drop(kind: type) -> Callable[[int], None]:
    def drop(rep_: int) -> None:
        obj = context.current().table.discard(rep_)
        if obj is not None and hasattr(obj, "close"):
            obj.close()

    return drop


def _stream_error(exc: Exception) -> Any:
    """stream-error, untagged: None is `closed`, an error handle is `last-operation-failed`."""
    if isinstance(exc, StreamFailed):
        return new_error(str(exc))
    return None


# -- wasi:io/error ------------------------------------------------------------------------------
def _error_to_debug_string(store: Any, self: Any) -> str:
    return context.current().table.get(rep(store, self), IoError).message


# -- wasi:io/poll -------------------------------------------------------------------------------
def _pollable_ready(store: Any, self: Any) -> bool:
    return context.current().table.get(rep(store, self), Pollable).ready()


def _pollable_block(store: Any, self: Any) -> None:
    ctx = context.current()
    p = ctx.table.get(rep(store, self), Pollable)
    if not p.ready():
        with ctx.waiting():
            p.wait(ctx.deadline)
    ctx.check_deadline()


def _poll(store: Any, pollables: list[Any]) -> list[int]:
    ctx = context.current()
    items = [ctx.table.get(rep(store, p), Pollable) for p in pollables]
    if not items:
        raise GuestTrap("poll: empty list")
    while True:
        ready = [i for i, p in enumerate(items) if p.ready()]
        if ready:
            return ready
        ctx.check_deadline()
        with ctx.waiting():
            if len(items) == 1:
                items[0].wait(ctx.deadline)
            else:
                # Pollables of different kinds have no common wait primitive: check in slices.
                items[0].wait(min(ctx.deadline, time.monotonic() + POLL_SLICE))


# -- wasi:io/streams ----------------------------------------------------------------------------
def _read_chunk(store: Any, self: Any, n: int, blocking: bool) -> Any:
    """Up to n bytes from the stream; None when closed; a stream-error value when it failed."""
    ctx = context.current()
    stream = ctx.table.get(rep(store, self), InputStream)
    try:
        return stream.read(min(n, MAX_READ), blocking, ctx.deadline)
    except (StreamFailed, StreamClosed) as exc:
        return _stream_error(exc)


def _read(blocking: bool) -> Callable[..., Any]:
    def read(store: Any, self: Any, n: int) -> Any:
        return _read_chunk(store, self, n, blocking)  # None is err(closed)

    return read


def _skip(blocking: bool) -> Callable[..., Any]:
    def skip(store: Any, self: Any, n: int) -> Any:
        data = _read_chunk(store, self, n, blocking)
        return len(data) if isinstance(data, bytes | bytearray | memoryview) else data

    return skip


def _input_subscribe(store: Any, self: Any) -> Any:
    ctx = context.current()
    return new_pollable(ctx.table.get(rep(store, self), InputStream).pollable())


# result<_, stream-error> overlaps (`_` and `closed` are both None), so it is tagged.
OK_UNIT = tag("ok")


def _err(exc: Exception) -> Any:
    return tag("err", _stream_error(exc))


def _check_write(store: Any, self: Any) -> Any:
    stream = context.current().table.get(rep(store, self), OutputStream)
    try:
        return stream.check_write()
    except (StreamFailed, StreamClosed) as exc:
        return _stream_error(exc)


def _check_blocking_size(what: str, size: int) -> None:
    # The WIT contract of the blocking convenience calls, enforced as wasmtime (hence Spin) does:
    # a guest that passes more traps there, so it must trap here too rather than work only on us.
    if size > BLOCKING_WRITE_MAX:
        raise GuestTrap(f"Buffer too large for {what} (expected at most {BLOCKING_WRITE_MAX})")


def _write_to(store: Any, self: Any, contents: bytes, blocking: bool, flush: bool) -> Any:
    ctx = context.current()
    stream = ctx.table.get(rep(store, self), OutputStream)
    try:
        stream.write(contents, blocking, ctx.deadline)
        if flush:
            stream.flush(blocking, ctx.deadline)
    except (StreamFailed, StreamClosed) as exc:
        return _err(exc)
    return OK_UNIT


def _write(blocking: bool, flush: bool) -> Callable[..., Any]:
    def write(store: Any, self: Any, contents: bytes) -> Any:
        if blocking:
            _check_blocking_size("blocking-write-and-flush", len(contents))
        return _write_to(store, self, contents, blocking, flush)

    return write


def _write_zeroes(blocking: bool) -> Callable[..., Any]:
    def write_zeroes(store: Any, self: Any, n: int) -> Any:
        if blocking:
            _check_blocking_size("blocking-write-zeroes-and-flush", n)
        return _write_to(store, self, bytes(n), blocking, blocking)

    return write_zeroes


def _flush(blocking: bool) -> Callable[..., Any]:
    def flush(store: Any, self: Any) -> Any:
        ctx = context.current()
        stream = ctx.table.get(rep(store, self), OutputStream)
        try:
            stream.flush(blocking, ctx.deadline)
        except (StreamFailed, StreamClosed) as exc:
            return _err(exc)
        return OK_UNIT

    return flush


def _output_subscribe(store: Any, self: Any) -> Any:
    ctx = context.current()
    return new_pollable(ctx.table.get(rep(store, self), OutputStream).pollable())


def _splice(blocking: bool) -> Callable[..., Any]:
    def splice(store: Any, self: Any, src: Any, n: int) -> Any:
        ctx = context.current()
        out = ctx.table.get(rep(store, self), OutputStream)
        source = ctx.table.get(rep(store, src), InputStream)
        try:
            data = source.read(min(n, MAX_READ, out.check_write() or MAX_READ), blocking, ctx.deadline)
            if data is None:
                return None
            out.write(data, blocking, ctx.deadline)
        except (StreamFailed, StreamClosed) as exc:
            return _stream_error(exc)
        return len(data)

    return splice


# -- lepton:io/latin1: the same reads and writes, with bytes carried as latin-1 strings -----------
# (see runtime/engine/byte_bridge.py: a string crosses wasmtime's C API as one buffer, list<u8> byte by byte)
def _latin1_read(blocking: bool) -> Callable[..., Any]:
    def read(store: Any, self: Any, n: int) -> Any:
        data = _read_chunk(store, self, n, blocking)
        return codecs.latin_1_decode(data)[0] if isinstance(data, bytes | bytearray | memoryview) else data

    return read


def _latin1_write(blocking: bool, flush: bool) -> Callable[..., Any]:
    write = _write(blocking, flush)

    def latin1_write(store: Any, self: Any, contents: str) -> Any:
        return write(store, self, contents.encode("latin-1"))

    return latin1_write


class IoCapability(BaseCapability):
    name = "wasi-io"
    inline_safe = True  # in-memory work only: may run on the event loop (see runtime.http.scheduling)
    interfaces = frozenset({"wasi:io/error", "wasi:io/poll", "wasi:io/streams", LATIN1_INTERFACE})

    def implement(self, interface: str, version: str | None) -> InterfaceImpl:
        if interface == "wasi:io/error":
            return InterfaceImpl(
                resources={"error": (ERROR, _drop(IoError))},
                funcs={"[method]error.to-debug-string": _error_to_debug_string},
            )
        if interface == LATIN1_INTERFACE:
            return InterfaceImpl(
                funcs={
                    "read": _latin1_read(False),
                    "blocking-read": _latin1_read(True),
                    "write": _latin1_write(False, False),
                    "blocking-write-and-flush": _latin1_write(True, True),
                }
            )
        if interface == "wasi:io/poll":
            return InterfaceImpl(
                resources={"pollable": (POLLABLE, _drop(Pollable))},
                funcs={
                    "[method]pollable.ready": _pollable_ready,
                    "[method]pollable.block": _pollable_block,
                    "poll": _poll,
                },
            )
        return InterfaceImpl(
            resources={
                "input-stream": (INPUT_STREAM, _drop(InputStream)),
                "output-stream": (OUTPUT_STREAM, _drop(OutputStream)),
            },
            funcs={
                "[method]input-stream.read": _read(False),
                "[method]input-stream.blocking-read": _read(True),
                "[method]input-stream.skip": _skip(False),
                "[method]input-stream.blocking-skip": _skip(True),
                "[method]input-stream.subscribe": _input_subscribe,
                "[method]output-stream.check-write": _check_write,
                "[method]output-stream.write": _write(False, False),
                "[method]output-stream.blocking-write-and-flush": _write(True, True),
                "[method]output-stream.flush": _flush(False),
                "[method]output-stream.blocking-flush": _flush(True),
                "[method]output-stream.subscribe": _output_subscribe,
                "[method]output-stream.write-zeroes": _write_zeroes(False),
                "[method]output-stream.blocking-write-zeroes-and-flush": _write_zeroes(True),
                "[method]output-stream.splice": _splice(False),
                "[method]output-stream.blocking-splice": _splice(True),
            },
        )
