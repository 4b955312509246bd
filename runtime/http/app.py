"""RunningApp: one loaded app answering requests: Spin's semantics on the way in (mount prefix,
well-known endpoints, route matching, static responses, spin-* headers, body size), then the run
(runtime.http.scheduling decides inline or on a worker thread), then the guest's response or the
error it maps to (runtime.http.responses). `handle_component` serves Spin's service chaining (a
component by id, whatever its route); each request's guest finds where its own in-process calls
go in `GuestRequest.calls` (runtime.http.calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor as PoolExecutor

import runtime.telemetry as telemetry
from registry.loaded import LoadedApp
from runtime.capabilities.outbound_http.in_process import CALLER_HEADER
from runtime.core.guest_io import BodySource, BodyTooLarge, GuestRequest, ResponseSink
from runtime.errors import DeadlineExceeded, NeedsWorkerThread
from runtime.http.calls import RequestCalls
from runtime.http.responses import (
    body_of,
    describe,
    first_line,
    is_timeout,
    may_add_content_length,
    simple_response,
)
from runtime.http.routes import HttpRoute, RouteMatch, Router
from runtime.http.scheduling import (
    INLINE_BUDGET_S,
    INLINE_MAX_S,
    TURNS_KEPT,
    ComponentSlot,
    CpuShare,
    ThreadCap,
    Turn,
    execute,
)
from runtime.http.spin_headers import (
    AppPath,
    guest_request_headers,
    normalize_prefix,
    spin_headers,
    strip_mount_prefix,
    well_known_response,
)
from runtime.types import AppDirectory, AppSettings, IncomingRequest, OutgoingResponse

log = logging.getLogger("lepton.runtime")

READ_AHEAD_BYTES = 64 * 1024  # request bodies up to this size are read before the guest starts
HEAD_GRACE_S = 1.0  # extra wait for a response head beyond the app timeout (host-side waits)
# The loop's timer for response events a busy guest left pending: first after FIRST_TICK_S (a
# typical guest has finished by then, so it costs nothing), then backing off to MAX_TICK_S.
FIRST_TICK_S = 0.01
MAX_TICK_S = 0.05
# How long an in-process call waits for a worker thread before it gets 503. Its callers each hold
# a thread while they wait for it: when they hold all of the app's threads (concurrent call
# loops, deep chains under load), waiting longer would only wait for everyone's deadline, while
# a quick 503 unwinds the chain and gives their threads back.
CHAINED_THREAD_WAIT_S = 1.0


class RunningApp:
    def __init__(
        self,
        app: LoadedApp,
        settings: AppSettings,
        router: Router,
        slots: dict[str, ComponentSlot],
        pool: PoolExecutor,
        max_threads: int,
        cpu_turns: int,
        directory: Callable[[], AppDirectory | None] = lambda: None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.router = router
        # By component id: every component an http trigger names, private routes included (a
        # `<id>.spin.internal` call reaches any of them).
        self.slots = slots
        self._directory = directory  # the host's other apps, for <app>.lepton.internal calls
        self._pool = pool
        # An app may hold at most this many worker threads, so one app's slow or stuck guests
        # cannot take every thread away from the other apps.
        self.threads = ThreadCap(max_threads)
        # And at most this many of them executing (not waiting) at once: its share of the cores;
        # its runs beyond that queue, and run on the threads holding its turns.
        self.cpu = CpuShare(cpu_turns, pool.submit)
        self.closed = False
        self._warned_no_route = False
        self.log = logging.getLogger(f"lepton.app.{app.name}")

    def close(self) -> None:
        """Release the app (called once its last in-flight request has ended)."""
        self.closed = True
        for slot in self.slots.values():
            if slot.guest.reuse is not None:
                slot.guest.reuse.close()  # a swapped-out version's kept instances end with it
            if slot.guest.spares is not None:
                slot.guest.spares.close()  # and its instances made ahead
        self.slots = {}

    # -- request handling ---------------------------------------------------------------------
    async def handle(self, request: IncomingRequest) -> OutgoingResponse:
        app_path = strip_mount_prefix(request.path, request.query, request.mount_prefix)
        if app_path is None:
            return simple_response(404)
        reserved = well_known_response(
            app_path.path, name=self.app.name, version=self.app.version, oci_image_digest=self.app.manifest_digest
        )
        if reserved is not None:
            return simple_response(reserved.status, reserved.body, reserved.headers)
        match = self.router.match(app_path.path)
        if match is None:
            if not self._warned_no_route:
                self._warned_no_route = True
                self.log.warning("no route for %s (further misses are not logged)", app_path.path)
            return simple_response(404)
        route = match.route
        if telemetry.active:
            self._report_match(request, route)
        if route.static_response is not None:
            sr = route.static_response
            return simple_response(sr.status, sr.body or b"", sr.headers)
        assert route.component_id is not None
        slot = self.slots.get(route.component_id)
        if slot is None:
            self.log.error("app is closed or component %s is not loaded", route.component_id)
            return simple_response(503)
        return await self._serve(slot, request, match, app_path, request.host)

    async def handle_component(self, component_id: str, request: IncomingRequest) -> OutgoingResponse:
        """A call to ``http://<component_id>.spin.internal/...``: that component serves it, whatever
        its route (private ones too), as Spin's synthetic match does: route ``/...`` with the whole
        path as path info, and ``spin-full-url`` on ``localhost`` (Spin drops the Host of a chained
        request). LookupError when the app has no such component behind an http trigger."""
        slot = self.slots.get(component_id)
        if slot is None:
            raise LookupError(f"no component {component_id!r} with an HTTP trigger in app {self.app.name!r}")
        path = request.path or "/"
        route = HttpRoute(
            trigger_id=component_id, raw_route="/...", based_route="/...", component_id=component_id,
            static_response=None, executor=None, is_wildcard=True,
        )
        match = RouteMatch(route=route, path=path, params=(), path_info=path)
        if telemetry.instruments is not None:
            telemetry.instruments.request(request.served_as or self.app.name, self.app.name, component_id)
        return await self._serve(slot, request, match, AppPath(path, request.query), "")

    def _report_match(self, request: IncomingRequest, route: HttpRoute) -> None:
        """OpenTelemetry is on: count the request (Spin's spin.request_count, static responses
        included) and name the router's server span after the route (its ``http.route``: the
        mount prefix and the route as the trigger wrote it)."""
        if telemetry.instruments is not None:
            telemetry.instruments.request(request.served_as or self.app.name, self.app.name, route.lookup_key)
        if telemetry.recorder is not None:
            from runtime.telemetry import spans

            spans.note_route(normalize_prefix(request.mount_prefix) + route.raw_route)

    async def _serve(
        self, slot: ComponentSlot, request: IncomingRequest, match: RouteMatch, app_path: AppPath, url_host: str
    ) -> OutgoingResponse:
        """Run the matched component. `url_host` is the host spin-full-url names ("" -> localhost)."""
        max_body = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > max_body:
            return simple_response(413)
        timeout = self.settings.timeout_s
        chain = request.chain
        if chain is not None:
            # An in-process call: the caller waits at most until its own deadline.
            timeout = min(timeout, chain.deadline - time.monotonic())
            if timeout <= 0:
                return simple_response(504)
        spin = spin_headers(
            scheme=request.scheme,
            host=url_host,
            path=request.path,
            query=request.query,
            mount_prefix=request.mount_prefix,
            match=match,
            client_addr=request.client_addr,
        )
        headers = guest_request_headers(_caller_headers(request), spin, request.mount_prefix)
        loop = asyncio.get_running_loop()
        source = BodySource(loop)
        guest_request = GuestRequest(
            method=request.method,
            scheme=request.scheme,
            authority=request.host,
            path_with_query=app_path.path_with_query,
            headers=headers,
            client_addr=request.client_addr,
            body=source,
            route=match,
            spin_headers=dict(spin),
            full_path=request.path,
            query=request.query,
            http_version=request.http_version,
            calls=RequestCalls(self, loop, request, self._directory()),
        )
        reported = None
        if telemetry.active:
            from runtime.telemetry import spans

            reported = spans.request_telemetry(request.headers, request.served_as or self.app.name)
        body_iter = request.body.__aiter__()
        read_ahead: list[bytes] = []
        if request.content_length == 0:
            source.end()  # nothing to read (and no timer to arm for it)
            complete = True
        elif self._body_is_short(request):
            try:
                async with asyncio.timeout(timeout):
                    complete = await self._read_ahead(body_iter, source, read_ahead, max_body)
            except BodyTooLarge:
                return simple_response(413)
            except TimeoutError:
                return simple_response(408)
            except Exception as exc:  # the client's body broke off (disconnect, protocol error)
                self.log.info("request body could not be read: %s", exc)
                return simple_response(400)
        else:
            complete = False
        if complete and slot.inline_now():
            response = self._run_inline(slot, guest_request, timeout, reported)
            if response is not None:
                return response
            # Over the inline budget: run again on a worker thread with a fresh, full body.
            slot.demote()
            source = BodySource(loop)
            for chunk in read_ahead:
                source.feed(chunk)
            source.end()
            guest_request.body = source
        thread_wait = timeout if chain is None else min(timeout, CHAINED_THREAD_WAIT_S)
        return await self._run_threaded(slot, guest_request, body_iter, complete, max_body, timeout, thread_wait,
                                        reported)

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

    def _run_inline(self, slot: ComponentSlot, request: GuestRequest, timeout: float,
                    reported: telemetry.RequestTelemetry | None) -> OutgoingResponse | None:
        loop = asyncio.get_running_loop()
        sink = ResponseSink(loop, inline=True)
        budget = min(timeout, INLINE_BUDGET_S)
        cost = execute(slot, request, sink, budget, reported=reported)
        if isinstance(sink.error, NeedsWorkerThread):
            slot.may_inline = False
            slot.log.info("inline run given up before %s; it runs on worker threads from now on", sink.error)
            return None
        if sink.error is not None and is_timeout(sink.error) and budget < timeout:
            slot.log.info("inline run exceeded %.0f ms; retrying on a worker thread%s", budget * 1000,
                          _where_from_now(slot.strike()))
            return None
        slot.inline_runs += 1
        if sink.error is None:
            slot.record(cost)
        if cost > INLINE_MAX_S * 4:
            # Every inline run holds up the whole event loop (see INLINE_STRIKES).
            slot.log.info("an inline run cost %.0f ms%s", cost * 1000, _where_from_now(slot.strike()))
        return self._response(slot, request, sink, sink.error if not sink.started else None, timeout)

    async def _run_threaded(
        self,
        slot: ComponentSlot,
        request: GuestRequest,
        body_iter: AsyncIterator[bytes],
        complete: bool,
        max_body: int,
        timeout: float,
        thread_wait: float,
        reported: telemetry.RequestTelemetry | None = None,
    ) -> OutgoingResponse:
        loop = asyncio.get_running_loop()
        sink = ResponseSink(loop)
        source = request.body
        started = time.monotonic()
        if not self.threads.try_acquire():  # (most requests: no timer to arm and cancel)
            try:
                async with asyncio.timeout(thread_wait):
                    await self.threads.acquire()
            except TimeoutError:
                slot.log.error("%s: no worker thread free for this app within %.1fs: 503", describe(request),
                               thread_wait)
                return simple_response(503)
        pump = None if complete else asyncio.create_task(self._pump(body_iter, source, max_body))
        remaining = max(0.001, timeout - (time.monotonic() - started))
        deadline = time.monotonic() + remaining
        ended = False  # set by the worker when the run is over (a plain flag: read by the loop's tick)

        def work() -> bool:
            nonlocal ended
            # Runs holding one of the app's CPU turns (CpuShare.submit), maybe after waiting in its
            # queue. The worker ends its own run: the loop hears about the response from the sink
            # alone (one wake-up per request), not also from a future chained back to it.
            turn = Turn(self.cpu, deadline, held=True)
            try:
                left = deadline - time.monotonic()
                if left <= 0:
                    sink.finish(DeadlineExceeded(TURNS_KEPT))
                else:
                    cost = execute(slot, request, sink, left, turn, reported)
                    if sink.error is None:
                        slot.record(cost)
            finally:
                ended = True
                self.threads.release()
                if pump is not None and not pump.done() and not loop.is_closed():
                    loop.call_soon_threadsafe(pump.cancel)  # the guest is done with the body
            return turn.held

        try:
            self.cpu.submit(work)
        except BaseException:
            self.threads.release()
            raise

        ticker: asyncio.TimerHandle

        def tick(delay: float) -> None:
            # Pick up response events the guest left pending (it is busy and did not block).
            nonlocal ticker
            sink.flush_pending()
            if not ended:
                delay = min(delay * 2, MAX_TICK_S)
                ticker = loop.call_later(delay, tick, delay)

        ticker = loop.call_later(FIRST_TICK_S, tick, FIRST_TICK_S)
        try:
            # (Awaited directly: if this wait ends early, the sink no longer needs the future.)
            async with asyncio.timeout(remaining + HEAD_GRACE_S):
                await sink.head_future
        except TimeoutError:
            slot.log.error("%s: no response within %.1fs: 504", describe(request), timeout)
            sink.close()
            return simple_response(504)
        except asyncio.CancelledError:
            sink.close()  # the client is gone: the guest's next write fails and it ends
            raise
        except Exception as exc:
            return self._response(slot, request, sink, exc, timeout, source)
        if ended:
            ticker.cancel()  # the run is over and its finish told the loop everything: no tick needed
        return self._response(slot, request, sink, None, timeout, source)

    def _response(
        self,
        slot: ComponentSlot,
        request: GuestRequest,
        sink: ResponseSink,
        error: BaseException | None,
        timeout: float,
        source: BodySource | None = None,
    ) -> OutgoingResponse:
        if error is not None:
            if source is not None and isinstance(source.error, BodyTooLarge):
                slot.log.warning("%s: request body over %d bytes: 413", describe(request), self.settings.max_body_bytes)
                return simple_response(413)
            if is_timeout(error):
                slot.log.error("%s: timed out after %.1fs: 504 (%s)", describe(request), timeout, first_line(error))
                return simple_response(504)
            slot.log.error("%s: guest failed: 500 (%s)", describe(request), first_line(error))
            slot.log.debug("guest failure detail", exc_info=error)
            return simple_response(500)
        status, headers = sink.head_future.result()
        out = list(headers)
        whole = sink.take_complete()
        if whole is None:
            return OutgoingResponse(status=status, headers=out, body=self._stream(slot, request, sink))
        # The guest finished before the head went out: frame the body by its length instead of
        # chunking it, and hand it over whole (one message, one write; what a proxy would do).
        if may_add_content_length(request.method, status, out):
            out.append(("content-length", str(len(whole)).encode()))
        if request.method == "HEAD":
            whole = b""  # as hyper does for Spin: the guest's body is dropped
        return OutgoingResponse(status=status, headers=out, body=body_of(whole), whole_body=whole)

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
            slot.log.error("%s: response body truncated: %s", describe(request), first_line(sink.error))


def _caller_headers(request: IncomingRequest) -> Sequence[tuple[str, bytes]]:
    """The request's headers as the guest sees them: `lepton-caller-app` only as the runtime set
    it (on a call from another app of this server), never as a client or a calling guest sent it."""
    headers = request.headers
    if any(name == CALLER_HEADER for name, _ in headers):
        headers = [(name, value) for name, value in headers if name != CALLER_HEADER]
    chain = request.chain
    if chain is not None and chain.caller_app:
        return [*headers, (CALLER_HEADER, chain.caller_app.encode("latin-1", "replace"))]
    return headers


def _where_from_now(for_good: bool) -> str:
    return ("; it runs on worker threads from now on" if for_good
            else "; it runs on worker threads until it proves cheap again")
