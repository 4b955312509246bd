"""RunningApp: one loaded app answering requests (routing, spin-* headers, limits, error mapping).

Execution path, per request: a guest runs INLINE on the event loop only when nothing can make it
wait or run long: its request body is already complete (small bodies are read ahead), its
executor and every capability it imports are non-blocking Python/wasmtime WASI, and its last
runs each cost under INLINE_MAX_S. A run's cost is the CPU time of the thread that ran it, unless
the guest waited (on a pollable, its body, a slow client): then it is the wall time. CPU time is
what the guest itself spends, so a loaded machine (the thread queued for the GIL or a core) does
not push a fast guest off the inline path, while a guest that sleeps or waits still counts its
wall time and stays on a worker thread. Inline runs get a short epoch budget (INLINE_BUDGET_S); a run
that exceeds it is discarded (nothing has reached the client: inline responses are collected
first) and re-run on a worker thread with the app's full timeout, and the component goes back to
the worker pool until it proves fast again. Everything else runs on the worker pool, with the
request body streamed in and the response streamed out as the guest writes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import Executor as PoolExecutor
from dataclasses import dataclass

import wasmtime

from registry.loaded import LoadedApp
from runtime.capabilities import Executor
from runtime.context import RequestContext, bind
from runtime.errors import DeadlineExceeded
from runtime.guest import PreparedGuest
from runtime.guest_io import BodySource, BodyTooLarge, GuestRequest, ResponseSink
from runtime.routes import Router
from runtime.spin_headers import guest_request_headers, spin_headers, strip_mount_prefix, well_known_response
from runtime.types import AppSettings, IncomingRequest, OutgoingResponse

log = logging.getLogger("lepton.runtime")

INLINE_MAX_S = 0.003  # a component whose recent runs all cost less may run inline
INLINE_PROOF_RUNS = 4  # how many recent runs must have been that cheap
INLINE_BUDGET_S = 0.25  # epoch budget of an inline run before it is retried on a worker thread
READ_AHEAD_BYTES = 64 * 1024  # request bodies up to this size are read before the guest starts
HEAD_GRACE_S = 1.0  # extra wait for a response head beyond the app timeout (host-side waits)
# The loop's timer for response events a busy guest left pending: first after FIRST_TICK_S (a
# typical guest has finished by then, so it costs nothing), then backing off to MAX_TICK_S.
FIRST_TICK_S = 0.01
MAX_TICK_S = 0.05


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, DeadlineExceeded):
        return True
    # The epoch deadline surfaces as this trap ("interrupt" alone could be a guest function name).
    return isinstance(exc, wasmtime.WasmtimeError) and "wasm trap: interrupt" in str(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    causes = [line for line in lines if line.startswith("wasm trap") or "trap" in line.lower()]
    detail = causes[-1] if causes else (lines[-1] if lines else "")
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _what(request: GuestRequest) -> str:
    """How log lines name a request: method and the full path as the client sent it."""
    query = f"?{request.query}" if request.query else ""
    return f"{request.method} {request.full_path}{query}"


async def _body(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


def _simple(status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None) -> OutgoingResponse:
    return OutgoingResponse(status=status, headers=headers or [], body=_body(body), whole_body=body)


def _may_add_content_length(method: str, status: int, headers: list[tuple[str, str]]) -> bool:
    if method == "HEAD" or status < 200 or status in (204, 304):
        return False
    return not any(name.lower() in ("content-length", "transfer-encoding") for name, _ in headers)


def _encode_header(value: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def _decode_header(value: bytes) -> str:
    return value.decode("latin-1")


class ThreadCap:
    """How many worker threads an app may hold: an async semaphore usable from any event loop
    (a RunningApp may be shared by several loops, e.g. one per thread in tests)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free = limit
        self._lock = threading.Lock()
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, fut))
        try:
            await fut
        except asyncio.CancelledError:
            with self._lock:
                if (loop, fut) in self._waiters:
                    self._waiters.remove((loop, fut))
                    raise
            # Granted at the same moment it was cancelled: hand the slot on.
            self.release()
            raise

    @property
    def in_use(self) -> int:
        return self.limit - self._free

    def release(self) -> None:
        with self._lock:
            while self._waiters:
                loop, fut = self._waiters.popleft()
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_grant, fut)
                    return
            self._free += 1


def _grant(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
    # (A future cancelled meanwhile has already passed its slot on in ThreadCap.acquire.)


@dataclass(eq=False)
class ComponentSlot:
    """A component of the app as one executor serves it, with its execution-path statistics."""

    guest: PreparedGuest
    executor: Executor
    may_inline: bool  # static facts allow inline runs (see module docstring)
    # The costs of the last runs. A tuple replaced whole: worker threads record, the loop reads.
    recent: tuple[float, ...] = ()
    log: logging.Logger = log

    def inline_now(self) -> bool:
        recent = self.recent
        return self.may_inline and len(recent) == INLINE_PROOF_RUNS and max(recent) < INLINE_MAX_S

    def record(self, cost: float) -> None:
        """A successful run's cost (see module docstring); safe from any thread."""
        self.recent = (*self.recent[1 - INLINE_PROOF_RUNS :], cost)

    def demote(self) -> None:
        self.recent = ()


class RunningApp:
    def __init__(
        self,
        app: LoadedApp,
        settings: AppSettings,
        router: Router,
        slots: dict[str, ComponentSlot],
        pool: PoolExecutor,
        max_threads: int,
    ) -> None:
        self.app = app
        self.settings = settings
        self.router = router
        self.slots = slots  # by component id
        self._pool = pool
        # An app may hold at most this many worker threads, so one app's slow or stuck guests
        # cannot take every thread away from the other apps.
        self.threads = ThreadCap(max_threads)
        self.closed = False
        self._warned_no_route = False
        self.log = logging.getLogger(f"lepton.app.{app.name}")

    def close(self) -> None:
        """Release the app (called once its last in-flight request has ended)."""
        self.closed = True
        self.slots = {}

    # -- request handling ---------------------------------------------------------------------
    async def handle(self, request: IncomingRequest) -> OutgoingResponse:
        app_path = strip_mount_prefix(request.path, request.query, request.mount_prefix)
        if app_path is None:
            return _simple(404)
        reserved = well_known_response(
            app_path.path, name=self.app.name, version=self.app.version, oci_image_digest=self.app.manifest_digest
        )
        if reserved is not None:
            return _simple(reserved.status, reserved.body, list(reserved.headers))
        match = self.router.match(app_path.path)
        if match is None:
            if not self._warned_no_route:
                self._warned_no_route = True
                self.log.warning("no route for %s (further misses are not logged)", app_path.path)
            return _simple(404)
        route = match.route
        if route.static_response is not None:
            sr = route.static_response
            return _simple(sr.status, sr.body or b"", list(sr.headers))
        assert route.component_id is not None
        slot = self.slots.get(route.component_id)
        if slot is None:
            self.log.error("app is closed or component %s is not loaded", route.component_id)
            return _simple(503)
        max_body = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > max_body:
            return _simple(413)
        spin = spin_headers(
            scheme=request.scheme,
            host=request.host,
            path=request.path,
            query=request.query,
            mount_prefix=request.mount_prefix,
            match=match,
            client_addr=request.client_addr,
        )
        headers = guest_request_headers(list(request.headers), spin, request.mount_prefix)
        loop = asyncio.get_running_loop()
        source = BodySource(loop)
        guest_request = GuestRequest(
            method=request.method,
            scheme=request.scheme,
            authority=request.host,
            path_with_query=app_path.path_with_query,
            headers=[(n, _encode_header(v)) for n, v in headers],
            client_addr=request.client_addr,
            body=source,
            route=match,
            spin_headers=dict(spin),
            full_path=request.path,
            query=request.query,
            http_version=request.http_version,
        )
        body_iter = request.body.__aiter__()
        read_ahead: list[bytes] = []
        if request.content_length == 0:
            source.end()  # nothing to read (and no timer to arm for it)
            complete = True
        elif self._body_is_short(request):
            try:
                async with asyncio.timeout(self.settings.timeout_s):
                    complete = await self._read_ahead(body_iter, source, read_ahead, max_body)
            except BodyTooLarge:
                return _simple(413)
            except TimeoutError:
                return _simple(408)
            except Exception as exc:  # the client's body broke off (disconnect, protocol error)
                self.log.info("request body could not be read: %s", exc)
                return _simple(400)
        else:
            complete = False
        if complete and slot.inline_now():
            response = self._run_inline(slot, guest_request)
            if response is not None:
                return response
            # Over the inline budget: run again on a worker thread with a fresh, full body.
            slot.demote()
            source = BodySource(loop)
            for chunk in read_ahead:
                source.feed(chunk)
            source.end()
            guest_request.body = source
        return await self._run_threaded(slot, guest_request, body_iter, complete, max_body)

    @staticmethod
    def _body_is_short(request: IncomingRequest) -> bool:
        if request.content_length is not None:
            return request.content_length <= READ_AHEAD_BYTES
        # HTTP/1.x without Content-Length or Transfer-Encoding has no body at all.
        return request.http_version.startswith("1") and not any(
            n == "transfer-encoding" for n, _ in request.headers
        )

    @staticmethod
    async def _read_ahead(
        body_iter: AsyncIterator[bytes], source: BodySource, kept: list[bytes], max_body: int
    ) -> bool:
        async for chunk in body_iter:
            source.feed(chunk)
            kept.append(chunk)
            if source.total > max_body:
                raise BodyTooLarge()
            if source.total > READ_AHEAD_BYTES:
                return False
        source.end()
        return True

    async def _pump(self, body_iter: AsyncIterator[bytes], source: BodySource, max_body: int) -> None:
        """Feed the rest of the request body to the guest as it arrives (bounded buffer)."""
        try:
            async for chunk in body_iter:
                source.feed(chunk)
                if source.total > max_body:
                    source.end(BodyTooLarge(f"request body larger than {max_body} bytes"))
                    return
                await source.wait_for_space()
            source.end()
        except asyncio.CancelledError:
            source.end(ConnectionError("request cancelled"))
            raise
        except Exception as exc:  # client went away mid-body
            source.end(exc)

    def _execute(self, slot: ComponentSlot, request: GuestRequest, sink: ResponseSink, timeout_s: float) -> float:
        """Run the guest to completion on this thread; never raises (errors go to the sink).
        Returns the run's cost: thread CPU seconds, or wall seconds if the guest waited."""
        ctx = RequestContext(
            app=self.app,
            component=slot.guest.component,
            settings=self.settings,
            deadline=time.monotonic() + timeout_s,
            log=slot.log,
            on_block=sink.flush,
        )
        started = time.perf_counter()
        cpu_started = time.thread_time()
        try:
            with bind(ctx):
                slot.executor.run(slot.guest, request, sink)
        except BaseException as exc:
            sink.finish(exc)
        else:
            sink.finish()
        finally:
            ctx.close()
        if ctx.blocked or sink.waited:
            return time.perf_counter() - started
        return time.thread_time() - cpu_started

    def _run_inline(self, slot: ComponentSlot, request: GuestRequest) -> OutgoingResponse | None:
        loop = asyncio.get_running_loop()
        sink = ResponseSink(loop, inline=True)
        budget = min(self.settings.timeout_s, INLINE_BUDGET_S)
        cost = self._execute(slot, request, sink, budget)
        if sink.error is not None and _is_timeout(sink.error) and budget < self.settings.timeout_s:
            slot.log.info("inline run exceeded %.0f ms; retrying on a worker thread", budget * 1000)
            return None
        if sink.error is None:
            slot.record(cost)
        if cost > INLINE_MAX_S * 4:
            slot.demote()
        return self._response(slot, request, sink, sink.error if not sink.started else None)

    async def _run_threaded(
        self,
        slot: ComponentSlot,
        request: GuestRequest,
        body_iter: AsyncIterator[bytes],
        complete: bool,
        max_body: int,
    ) -> OutgoingResponse:
        loop = asyncio.get_running_loop()
        sink = ResponseSink(loop)
        source = request.body
        timeout = self.settings.timeout_s
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                await self.threads.acquire()
        except TimeoutError:
            slot.log.error("%s: no worker thread free for this app within %.1fs: 503", _what(request), timeout)
            return _simple(503)
        pump = None if complete else asyncio.create_task(self._pump(body_iter, source, max_body))
        remaining = max(0.001, timeout - (time.monotonic() - started))
        ended = threading.Event()

        def work() -> None:
            # The worker ends its own run: the loop hears about the response from the sink alone
            # (one wake-up per request), not also from a future chained back to it.
            try:
                cost = self._execute(slot, request, sink, remaining)
                if sink.error is None:
                    slot.record(cost)
            finally:
                ended.set()
                self.threads.release()
                if pump is not None and not pump.done() and not loop.is_closed():
                    loop.call_soon_threadsafe(pump.cancel)  # the guest is done with the body

        try:
            self._pool.submit(work)
        except BaseException:
            self.threads.release()
            raise

        def tick(delay: float) -> None:
            # Pick up response events the guest left pending (it is busy and did not block).
            sink.flush_pending()
            if not ended.is_set():
                delay = min(delay * 2, MAX_TICK_S)
                loop.call_later(delay, tick, delay)

        loop.call_later(FIRST_TICK_S, tick, FIRST_TICK_S)
        try:
            # (Awaited directly: if this wait ends early, the sink no longer needs the future.)
            async with asyncio.timeout(remaining + HEAD_GRACE_S):
                await sink.head_future
        except TimeoutError:
            slot.log.error("%s: no response within %.1fs: 504", _what(request), timeout)
            sink.close()
            return _simple(504)
        except asyncio.CancelledError:
            sink.close()  # the client is gone: the guest's next write fails and it ends
            raise
        except Exception as exc:
            return self._response(slot, request, sink, exc, source)
        return self._response(slot, request, sink, None, source)

    def _response(
        self,
        slot: ComponentSlot,
        request: GuestRequest,
        sink: ResponseSink,
        error: BaseException | None,
        source: BodySource | None = None,
    ) -> OutgoingResponse:
        if error is not None:
            if source is not None and isinstance(source.error, BodyTooLarge):
                slot.log.warning("%s: request body over %d bytes: 413", _what(request), self.settings.max_body_bytes)
                return _simple(413)
            if _is_timeout(error):
                slot.log.error(
                    "%s: timed out after %.1fs: 504 (%s)", _what(request), self.settings.timeout_s, _first_line(error)
                )
                return _simple(504)
            slot.log.error("%s: guest failed: 500 (%s)", _what(request), _first_line(error))
            slot.log.debug("guest failure detail", exc_info=error)
            return _simple(500)
        status, headers = sink.head_future.result()
        decoded = [(n, _decode_header(v)) for n, v in headers]
        whole = sink.take_complete()
        if whole is None:
            return OutgoingResponse(status=status, headers=decoded, body=self._stream(slot, request, sink))
        # The guest finished before the head went out: frame the body by its length instead of
        # chunking it, and hand it over whole (one message, one write; what a proxy would do).
        if _may_add_content_length(request.method, status, decoded):
            decoded.append(("content-length", str(len(whole))))
        if request.method == "HEAD":
            whole = b""  # as hyper does for Spin: the guest's body is dropped
        return OutgoingResponse(status=status, headers=decoded, body=_body(whole), whole_body=whole)

    async def _stream(self, slot: ComponentSlot, request: GuestRequest, sink: ResponseSink) -> AsyncIterator[bytes]:
        head_only = request.method == "HEAD"  # as hyper does for Spin: the guest's body is dropped
        try:
            async for chunk in sink.chunks():
                if not head_only:
                    yield chunk
        finally:
            with contextlib.suppress(Exception):
                sink.close()
        if sink.error is not None:
            slot.log.error("%s: response body truncated: %s", _what(request), _first_line(sink.error))
