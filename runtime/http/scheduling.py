"""Where a guest runs: inline on the event loop or on a worker thread, and how many threads an app
may hold.

Execution path, per request: a guest runs INLINE on the event loop only when nothing can make it
wait or run long: its request body is already complete (small bodies are read ahead), its
executor does not wait, its last runs each cost under INLINE_MAX_S, and it has never called a
capability that is not inline-safe (in-memory work only: wasi:http types, streams, clocks, cli).
Components may import such capabilities (the Spin SDKs import every Spin interface whatever the
app uses): while a run is inline, their host functions refuse to run (NeedsWorkerThread, raised
before they do anything), and so does any wait (a timer, a stream not ready); the run is given up
with nothing sent, and it runs again on a worker thread. That component then stays on worker
threads for good (ComponentSlot.may_inline). Running inline saves each request two thread
hand-offs and the GIL passing between the loop and a guest thread: the Python spin-sdk hello with
instance reuse served about 1.3-1.7x the requests at 16 connections
(docs/explanation/execution-path.md). A run's cost is the CPU time of the thread that ran it, unless
the guest waited (on a pollable, its body, a slow client): then it is the wall time. CPU time is
what the guest itself spends, so a loaded machine (the thread queued for the GIL or a core) does
not push a fast guest off the inline path, while a guest that sleeps or waits still counts its
wall time and stays on a worker thread. Inline runs get a short epoch budget (INLINE_BUDGET_S); a run
that exceeds it is discarded (nothing has reached the client: inline responses are collected
first) and re-run on a worker thread with the app's full timeout. A run over the budget, or one
that cost over 4 x INLINE_MAX_S, is a strike: the component goes back to worker threads until it
proves cheap again, and at the INLINE_STRIKES-th for good (for this version of the app). Each such
run stalls every app on the loop, so a guest alternating cheap and costly requests must not do it
again and again; a pause of the whole process (a profiler, a stalled VM) can cause one, so one is
not enough. Everything else runs on the worker pool, with the request body streamed in and the
response streamed out as the guest writes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import runtime.telemetry as telemetry
from runtime.core.context import RequestContext, bind
from runtime.core.contract import Executor
from runtime.core.guest import PreparedGuest
from runtime.core.guest_io import GuestRequest, ResponseSink
from runtime.errors import DeadlineExceeded

log = logging.getLogger("lepton.runtime")

INLINE_MAX_S = 0.003  # a component whose recent runs all cost less may run inline
INLINE_PROOF_RUNS = 4  # how many recent runs must have been that cheap
INLINE_BUDGET_S = 0.1  # epoch budget of an inline run before it is retried on a worker thread
INLINE_STRIKES = 3  # costly inline runs a component may have before it stays on worker threads

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

    def try_acquire(self) -> bool:
        """Take a slot if one is free now (no waiting)."""
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return True
        return False

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
    may_inline: bool  # inline runs allowed: static facts, then cleared for good by NeedsWorkerThread
    inline_runs: int = 0  # runs that ended inline (for status and tests)
    inline_strikes: int = 0  # costly inline runs (see module docstring)
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

    def strike(self) -> bool:
        """An inline run was costly: back to worker threads until the component proves cheap
        again, for good at the INLINE_STRIKES-th. Returns whether it is for good."""
        self.inline_strikes += 1
        self.demote()
        if self.inline_strikes >= INLINE_STRIKES:
            self.may_inline = False
        return not self.may_inline


# Why a run ended without executing again: no CPU turn of its app came free before its deadline.
TURNS_KEPT = "the app's guests kept every CPU turn until the deadline"


class CpuShare:
    """How many of one app's guests may execute at once (its share of the cores), and the app's
    run queue.

    Worker threads running wasm release the GIL, so without a bound eight spinning guests of one
    app took both cores of a 2-core host and every other app (and the event loop) starved: a
    healthy app fell to 0.05x of its throughput. A guest holds a turn while it runs, gives it
    back while it waits (RequestContext.waiting: the network, a pollable, its body, a slow client)
    and takes one again before it runs on, so an app whose guests mostly wait is not slowed.

    Runs that find no free turn queue here instead of each waiting on a thread of its own: the
    thread that holds a turn runs the next queued run when its own ends (:meth:`drain`), so under
    load the turn stays on one warm thread. Handing the turn to another thread cost a wake-up, a
    GIL hand-off and a cold cache per request: the Python spin-sdk hello with instance reuse
    served 0.83x of its one-connection rate at 16 connections that way (see
    docs/explanation/execution-path.md). A run that waited gets its turn back before queued runs
    start, so a guest that waits is not starved by a busy queue.
    """

    def __init__(self, turns: int, start: Callable[[Callable[[], None]], object] | None = None) -> None:
        self.turns = turns
        self._start = start  # runs a callable on a worker thread (a pool's submit)
        self._lock = threading.Lock()
        self._free = turns
        self._queued: deque[Callable[[], bool]] = deque()  # runs not started yet
        self._resuming: deque[queue.SimpleQueue[None]] = deque()  # runs that waited, want a turn back

    def submit(self, run: Callable[[], bool]) -> None:
        """Run `run` holding a turn: as soon as a turn is free, after the runs queued before it,
        on a worker thread (the one holding a turn then, or one started for it). `run` must not
        raise; it returns whether it still holds the turn (a run that waited may have failed to
        get it back before its deadline)."""
        with self._lock:
            self._queued.append(run)
            if self._free == 0:
                return  # the thread holding a turn runs it when its own run ends
        try:
            self._start_queued()
        except BaseException:  # (the pool is shut down) the run is not left queued
            with self._lock:
                if run in self._queued:
                    self._queued.remove(run)
            raise

    def _start_queued(self) -> None:
        """Have a worker thread take a free turn and run the queue. The turn is taken when that
        thread starts, not now: if the pool has no thread free just now, a run that waited can
        still take the free turn meanwhile (a turn promised to a run still waiting for a thread
        would leave every run that waited waiting for it, while they hold the pool's threads)."""
        assert self._start is not None, "CpuShare without a thread to start runs on"
        self._start(self._run_queued)

    def _run_queued(self) -> None:
        with self._lock:
            if self._free == 0 or not self._queued:
                return  # taken meanwhile: the turn's holder runs the queue
            self._free -= 1
            run = self._queued.popleft()
        self.drain(run)

    def drain(self, run: Callable[[], bool]) -> None:
        """Run `run` with the turn this thread holds, then the queued runs while this thread
        holds it; pass the turn on (to a run that waited) or free it when there is nothing left."""
        while True:
            if not run():  # it ended without its turn: nothing to pass on
                return
            with self._lock:
                following = self._next()
            if following is None:
                return
            run = following

    def take(self, deadline: float) -> None:
        """Take a turn back after a wait: a free one, or the next one given or freed."""
        with self._lock:
            if self._free > 0:
                self._free -= 1
                return
            granted: queue.SimpleQueue[None] = queue.SimpleQueue()
            self._resuming.append(granted)
        try:
            granted.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            with self._lock:
                if granted in self._resuming:
                    self._resuming.remove(granted)
                    raise DeadlineExceeded(TURNS_KEPT) from None
            # Granted at the same moment it timed out: the turn is ours.
            granted.get()

    def _next(self) -> Callable[[], bool] | None:
        """(Under the lock) a turn is handed on: to a run that waited, which goes on first; else
        the next queued run, returned for the caller to run; else it is free."""
        if self._resuming:
            self._resuming.popleft().put(None)
            return None
        if self._queued:
            return self._queued.popleft()
        self._free += 1
        return None

    def give(self) -> None:
        """Give a turn back during a wait: to a run that waited, else it is free, and a worker
        thread is started for the queued runs (this one is about to wait)."""
        with self._lock:
            if self._resuming:
                self._resuming.popleft().put(None)
                return
            self._free += 1
            if not self._queued:
                return
        with contextlib.suppress(RuntimeError):  # the pool is shut down (the process is stopping)
            self._start_queued()

    @property
    def queued(self) -> int:
        return len(self._queued)


class Turn:
    """One run's hold on its app's CpuShare (given back and taken again around waits)."""

    __slots__ = ("deadline", "held", "share")

    def __init__(self, share: CpuShare, deadline: float, held: bool) -> None:
        self.share, self.deadline, self.held = share, deadline, held

    def take(self) -> None:
        self.share.take(self.deadline)
        self.held = True

    def give(self) -> None:
        if self.held:
            self.held = False
            self.share.give()


def execute(
    slot: ComponentSlot, request: GuestRequest, sink: ResponseSink, timeout_s: float, turn: Turn | None = None,
    reported: telemetry.RequestTelemetry | None = None,
) -> float:
    """Run the guest to completion on this thread; never raises (errors go to the sink). With a
    Turn (held when the run starts: CpuShare.submit), the guest gives its app's CPU turn back
    while it waits and takes one again before it goes on; the turn is still the run's when this
    returns, unless it could not be taken back (`turn.held`). With `reported` (OpenTelemetry is
    on), the run has its wasm execution span and its CPU time is recorded. Returns the run's
    cost: thread CPU seconds, or wall seconds if the guest waited. An inline sink means the run is
    on the event loop (host functions that may wait refuse to run: NeedsWorkerThread)."""
    deadline = time.monotonic() + timeout_s
    ctx = slot.guest.new_context(deadline=deadline, on_block=sink.flush)
    ctx.inline = sink.inline
    # Whatever the executor: host APIs read the request (outbound HTTP: where self requests and
    # in-process calls go).
    ctx.request = request
    run = None
    if reported is not None:
        from runtime.telemetry import spans  # (loads OpenTelemetry: only when it is on)

        run = spans.begin_run(reported, ctx, slot.executor.name)
    if turn is not None:
        ctx.on_wait, ctx.on_resume = turn.give, turn.take
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
        if run is not None:
            _report(run, ctx, sink, time.thread_time() - cpu_started)
    if ctx.blocked or sink.waited:
        return time.perf_counter() - started
    return time.thread_time() - cpu_started


def _report(run: telemetry.Run, ctx: RequestContext, sink: ResponseSink, cpu_seconds: float) -> None:
    from runtime.telemetry import spans

    instruments = telemetry.instruments
    if instruments is not None:
        instruments.cpu_time(run.app, ctx.app.name or "", ctx.component.id, cpu_seconds)
    spans.end_run(run, sink.error)
