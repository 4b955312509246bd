"""Bodies crossing between the asyncio loop and a guest running on a worker thread (or inline).

Both directions are bounded buffers, so a 100 MB body streams through a few hundred KiB:
- BodySource: the loop `feed`s request-body chunks as they arrive; the guest `read`s them,
  blocking (on a worker thread) until data, end of body, an error or the deadline.
- ResponseSink: the guest `start`s the response and `write`s chunks (blocking while the client is
  slow); the loop awaits `head()` and iterates `chunks()`.
When a guest runs inline on the loop the request body is complete before it starts, and the
response is only collected, so nothing here ever blocks the loop thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from runtime.core import context
from runtime.errors import DeadlineExceeded

BUFFER_LIMIT = 1024 * 1024  # bytes buffered per direction before the producer waits
FLUSH_BYTES = 64 * 1024  # response bytes that make the loop be told at once
COALESCE_S = 0.002  # longest a response event waits for company before the loop is told


class BodyTooLarge(Exception):
    """The request body exceeded AppSettings.max_body_bytes."""


class BodyError(Exception):
    """The request body could not be read (client went away, or too large)."""


class BodySource:
    """Request body: fed by the loop, read by the guest."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._cond = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._error: BaseException | None = None
        self._loop = loop
        self._space = asyncio.Event() if loop is not None else None
        self.total = 0  # bytes fed so far

    # -- loop side -------------------------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        with self._cond:
            self._chunks.append(chunk)
            self._buffered += len(chunk)
            self.total += len(chunk)
            self._cond.notify_all()

    def end(self, error: BaseException | None = None) -> None:
        with self._cond:
            self._eof = True
            if error is not None and self._error is None:
                self._error = error
            self._cond.notify_all()

    @property
    def complete(self) -> bool:
        return self._eof

    @property
    def error(self) -> BaseException | None:
        return self._error

    async def wait_for_space(self) -> None:
        """Back-pressure for the pump: wait while the guest has not consumed enough."""
        assert self._space is not None
        while self._buffered > BUFFER_LIMIT and not self._eof:
            self._space.clear()
            await self._space.wait()

    # -- guest side ------------------------------------------------------------------------
    def ready(self) -> bool:
        return bool(self._chunks) or self._eof

    def wait_ready(self, deadline: float) -> None:
        with self._cond:
            while not self._chunks and not self._eof:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DeadlineExceeded("deadline exceeded while waiting for the request body")
                self._cond.wait(remaining)

    def read(self, max_bytes: int, deadline: float | None) -> bytes | None:
        """Up to max_bytes; b"" if nothing is available yet (deadline None = don't wait);
        None at end of body. Raises BodyError if the body failed."""
        if deadline is not None:
            self.wait_ready(deadline)
        with self._cond:
            if not self._chunks:
                if self._eof:
                    if self._error is not None:
                        raise BodyError(str(self._error)) from self._error
                    return None
                return b""
            chunk = self._chunks.popleft()
            if len(chunk) > max_bytes:
                # The tail stays a memoryview: reading a big chunk in pieces must not copy the
                # rest of it each time (only the piece handed out is copied).
                view = memoryview(chunk)
                self._chunks.appendleft(view[max_bytes:])  # type: ignore[arg-type]
                chunk = bytes(view[:max_bytes])
            elif not isinstance(chunk, bytes):
                chunk = bytes(chunk)
            was_full = self._buffered > BUFFER_LIMIT
            self._buffered -= len(chunk)
        if was_full and self._buffered <= BUFFER_LIMIT and self._loop is not None and self._space is not None:
            self._loop.call_soon_threadsafe(self._space.set)
        return chunk

    def read_all(self, deadline: float | None) -> bytes:
        parts = []
        while (chunk := self.read(1 << 30, deadline)) is not None:
            if not chunk and deadline is None:
                break
            parts.append(chunk)
        return b"".join(parts)


class SinkClosed(Exception):
    """The client went away: further writes fail."""


class ResponseSink:
    """Response: started and written by the guest, consumed by the loop.

    Waking the event loop costs the guest thread the GIL (it needs it back for its next host
    call), so a worker-thread guest's events are coalesced: the loop is told at once when the
    guest finishes, when a MiB is not needed yet but 64 KiB are waiting, when the guest is about
    to block (`flush`, via RequestContext.notify_block) or an event has waited COALESCE_S;
    otherwise the loop's own timer (`flush_pending`, armed by the runner) picks them up.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, inline: bool = False) -> None:
        self._loop = loop
        self._inline = inline  # the guest runs on the event loop itself
        self._cond = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._closed = False  # consumer gone
        self._head: tuple[int, list[tuple[str, bytes]]] | None = None
        self._pending_since = 0.0  # monotonic time of the oldest event not yet delivered; 0 = none
        self._scheduled = False  # a _deliver is queued on the loop
        self.error: BaseException | None = None
        self.head_future: asyncio.Future[tuple[int, list[tuple[str, bytes]]]] = loop.create_future()
        self._wakeup = asyncio.Event()
        self.started = False
        self.bytes_written = 0
        self.waited = False  # a write waited for the client to read (the guest was not running)

    @property
    def inline(self) -> bool:
        return self._inline

    # -- delivery to the loop ------------------------------------------------------------------

    def _event(self, urgent: bool) -> None:
        """Guest side: something changed; tell the loop now or leave it pending."""
        if self._inline:
            self._deliver()  # already on the loop thread
            return
        with self._cond:
            if self._scheduled:
                return
            now = time.monotonic()
            if self._pending_since == 0.0:
                self._pending_since = now
            if not urgent and now - self._pending_since < COALESCE_S:
                return
            self._scheduled = True
            self._pending_since = 0.0
        self._loop.call_soon_threadsafe(self._deliver)

    def flush(self) -> None:
        """Guest side, before it blocks: deliver whatever is pending."""
        if self._inline:
            return
        with self._cond:
            if self._scheduled or self._pending_since == 0.0:
                return
            self._scheduled = True
            self._pending_since = 0.0
        self._loop.call_soon_threadsafe(self._deliver)

    def flush_pending(self) -> None:
        """Loop side (timer): deliver events the guest left pending."""
        with self._cond:
            if self._pending_since == 0.0:
                return
            self._pending_since = 0.0
        self._deliver()

    def _deliver(self) -> None:
        """Loop side: publish the head / failure and wake the body consumer."""
        with self._cond:
            self._scheduled = False
            head = self._head
            failed = self._done and head is None
            error = self.error
        fut = self.head_future
        if not fut.done():
            if head is not None:
                fut.set_result(head)
            elif failed:
                fut.set_exception(error or RuntimeError("no response"))
                # Mark it retrieved: the runner reads failures from the sink, and an unretrieved
                # one would be logged, with a traceback, whenever the GC collects it (3.11 then
                # calls ast.parse re-entrantly, which can break an ast.parse/compile in progress).
                fut.exception()
        self._wakeup.set()

    @property
    def finished(self) -> bool:
        return self._done

    def take_complete(self) -> bytes | None:
        """The whole body, if the guest already finished it cleanly and none was sent yet; the
        sink is then closed (the caller owns the bytes). None leaves the sink streaming."""
        with self._cond:
            if not (self._done and self.error is None and self._buffered == self.bytes_written):
                return None
            whole = self._take_buffered()
        self.close()
        return whole

    def _take_buffered(self) -> bytes:
        """Everything buffered, as one bytes; wakes a writer waiting for room. Hold _cond."""
        chunks = self._chunks
        batch = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        self._cond.notify_all()
        return batch

    # -- guest side ------------------------------------------------------------------------
    def start(self, status: int, headers: Sequence[tuple[str, bytes]]) -> None:
        with self._cond:
            if self.started:
                raise RuntimeError("response already started")
            self.started = True
            self._head = (status, list(headers))
        self._event(urgent=False)

    def write(self, data: bytes, deadline: float | None = None) -> None:
        if not data:
            return
        with self._cond:
            if self._closed:
                raise SinkClosed("client disconnected")
            full = not self._inline and self._buffered > BUFFER_LIMIT
            if full and not self._scheduled:
                # Full: the loop must know there is data before we wait for it to drain.
                self._scheduled = True
                self._pending_since = 0.0
                self._loop.call_soon_threadsafe(self._deliver)
        if full:
            self.waited = True
            # Waited for outside the lock's first hold: giving the app's CPU turn back and
            # taking it again (RequestContext.waiting) must never hold up the loop's deliveries.
            with context.host_wait(), self._cond:
                while self._buffered > BUFFER_LIMIT and not self._closed:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise DeadlineExceeded("deadline exceeded while the client was not reading")
                    self._cond.wait(remaining)
        with self._cond:
            if self._closed:
                raise SinkClosed("client disconnected")
            self._chunks.append(data)
            self._buffered += len(data)
            self.bytes_written += len(data)
            urgent = self._buffered >= FLUSH_BYTES
        self._event(urgent)

    def finish(self, error: BaseException | None = None) -> None:
        with self._cond:
            if self._done:
                return
            self._done = True
            self.error = error
        self._event(urgent=True)

    def check_writable(self) -> int:
        """Bytes the guest may write without blocking (0 means it would block)."""
        if self._closed:
            raise SinkClosed("client disconnected")
        return max(0, BUFFER_LIMIT - self._buffered) if not self._inline else BUFFER_LIMIT

    # -- loop side -------------------------------------------------------------------------
    def close(self) -> None:
        """The consumer is gone (client disconnected): unblock and fail the writer."""
        with self._cond:
            self._closed = True
            self._chunks.clear()
            self._cond.notify_all()

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while True:
                with self._cond:
                    if self._chunks:
                        batch = self._take_buffered()
                    else:
                        batch = b""
                        if self._done:
                            break
                        self._wakeup.clear()
                if batch:
                    yield batch
                else:
                    await self._wakeup.wait()
        finally:
            self.close()


@dataclass
class GuestRequest:
    """The request as a guest sees it (after routing, prefix stripping and spin-* headers)."""

    method: str
    scheme: str
    authority: str
    path_with_query: str  # the app-relative path (mount prefix stripped) + "?query"
    headers: list[tuple[str, bytes]]  # original headers + spin-* headers, lower-case names
    client_addr: tuple[str, int]
    body: BodySource
    route: Any = None  # runtime.http.routes match object (component route, params, path info)
    spin_headers: dict[str, str] = field(default_factory=dict)
    full_path: str = ""  # raw path including the mount prefix
    query: str = ""
    http_version: str = "1.1"
    # Where the guest's in-process HTTP calls go (sibling components, its own app, other apps of
    # this server): set by the HTTP trigger (runtime.http.calls.RequestCalls), read by outbound
    # HTTP; None where nothing can be called in process (a load-time trial run).
    calls: Any = None
