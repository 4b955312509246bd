"""Where a guest runs: inline on the event loop or on a worker thread, and how many threads an app
may hold.

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
import logging
import queue
import threading
import time
from collections import deque
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
INLINE_BUDGET_S = 0.25  # epoch budget of an inline run before it is retried on a worker thread

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


class CpuShare:
    """How many of one app's guests may execute at once: its share of the cores.

    Worker threads running wasm release the GIL, so without a bound eight spinning guests of one
    app took both cores of a 2-core host and every other app (and the event loop) starved: a
    healthy app fell to 0.05x of its throughput. A guest holds a turn while it runs, gives it
    back while it waits (RequestContext.waiting: the network, a pollable, its body, a slow client)
    and takes one again before it runs on, so an app whose guests mostly wait is not slowed.
    """

    def __init__(self, turns: int) -> None:
        self.turns = turns
        # The free turns as tokens in a SimpleQueue: its get/put are C, about 0.15 µs a pair,
        # where threading's Semaphore (Python over a Condition) costs 2-5 µs, and a turn is
        # given and taken around every wait of every guest (each database statement, say).
        # _Turn.held keeps a run from giving back a turn it does not hold.
        self._free: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(turns):
            self._free.put(None)

    def take(self, deadline: float) -> None:
        try:
            self._free.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise DeadlineExceeded("the app's guests kept every CPU turn until the deadline") from None

    def give(self) -> None:
        self._free.put(None)


class _Turn:
    """One run's hold on its app's CpuShare (taken and given back around waits)."""

    __slots__ = ("deadline", "held", "share")

    def __init__(self, share: CpuShare, deadline: float) -> None:
        self.share, self.deadline, self.held = share, deadline, False

    def take(self) -> None:
        self.share.take(self.deadline)
        self.held = True

    def give(self) -> None:
        if self.held:
            self.held = False
            self.share.give()


def execute(
    slot: ComponentSlot, request: GuestRequest, sink: ResponseSink, timeout_s: float, share: CpuShare | None = None,
    reported: telemetry.RequestTelemetry | None = None,
) -> float:
    """Run the guest to completion on this thread; never raises (errors go to the sink). With a
    CpuShare, the guest executes only while it holds one of its app's turns. With `reported`
    (OpenTelemetry is on), the run has its wasm execution span and its CPU time is recorded.
    Returns the run's cost: thread CPU seconds, or wall seconds if the guest waited."""
    deadline = time.monotonic() + timeout_s
    turn = _Turn(share, deadline) if share is not None else None
    ctx = slot.guest.new_context(deadline=deadline, on_block=sink.flush)
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
        if turn is not None:
            turn.take()
        with bind(ctx):
            slot.executor.run(slot.guest, request, sink)
    except BaseException as exc:
        sink.finish(exc)
    else:
        sink.finish()
    finally:
        if turn is not None:
            turn.give()
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
