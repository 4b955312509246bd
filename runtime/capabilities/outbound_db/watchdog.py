"""Deadlines for blocking client-library calls, without moving them off the guest's thread.

The client libraries (redis-py, psycopg, mysqlclient) block in a socket read with no per-call
timeout, and a hung server would hold the guest's worker thread past the request's deadline. A
call runs under `WATCHDOG.guard(deadline, sock)`: if the deadline passes first, one shared
watchdog thread shuts the connection's socket down (`shutdown(2)`, not close: the descriptor
stays the library's), which makes the blocked read fail at once; the caller sees `guard.fired`
and discards the connection. A call costs two short lock holds; the thread sleeps while nothing
is guarded, and otherwise wakes only at the earliest guarded deadline.

Waking the thread for every guarded call would cost each call a GIL hand-off (measured: a
Redis GET took 290 µs instead of 60 µs), so while anything is guarded the thread also wakes every
TICK_S on its own, and a new guard wakes it only when its deadline comes before that.

`connect_within` bounds connection set-up the same way: the library connects on a short-lived
thread of its own and the guest stops waiting at the deadline (the library's own connect
timeout, set from the same deadline, ends that thread soon after).

The thread also calls the registered `reapers` every REAP_INTERVAL_S (pools closing idle
connections).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")

REAP_INTERVAL_S = 10.0
TICK_S = 0.1


class Reaper(Protocol):
    def reap(self, now: float) -> None: ...


class Guard:
    """One guarded call. `fired` is True once the watchdog has shut the socket down."""

    __slots__ = ("_lock", "deadline", "done", "fired", "sock")

    def __init__(self, deadline: float, sock: socket.socket | None) -> None:
        self.deadline = deadline
        self.sock = sock
        self.done = False
        self.fired = False
        self._lock = threading.Lock()

    def fire(self) -> None:
        with self._lock:
            if self.done or self.fired:
                return
            self.fired = True
            if self.sock is not None:
                # OSError: already closed by the peer or the library.
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        with self._lock:
            self.done = True


class Watchdog:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active: set[Guard] = set()
        self._wake_at = float("inf")  # when the thread plans to wake next
        self._thread: threading.Thread | None = None
        self.reapers: weakref.WeakSet[Reaper] = weakref.WeakSet()

    def guard(self, deadline: float, sock: socket.socket | None) -> _Guarded:
        return _Guarded(self, Guard(deadline, sock))

    def add_reaper(self, reaper: Reaper) -> None:
        with self._cond:
            self.reapers.add(reaper)
            self._start()

    def watch(self, guard: Guard) -> None:
        """Start guarding (what `guard()`'s context does on entry; `unwatch` ends it)."""
        with self._cond:
            self._active.add(guard)
            self._start()
            if guard.deadline < self._wake_at:
                self._cond.notify()

    def unwatch(self, guard: Guard) -> None:
        guard.finish()
        with self._cond:
            self._active.discard(guard)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lepton-db-watchdog", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        next_reap = time.monotonic() + REAP_INTERVAL_S
        while True:
            with self._cond:
                now = time.monotonic()
                expired = [g for g in self._active if g.deadline <= now]
                for g in expired:
                    self._active.discard(g)
                wake = next_reap if len(self.reapers) > 0 else float("inf")
                if self._active:
                    wake = min(wake, now + TICK_S, min(g.deadline for g in self._active))
                self._wake_at = wake
                if not expired and now < next_reap:
                    self._cond.wait(None if wake == float("inf") else max(0.0, wake - now))
                    continue
            for g in expired:
                g.fire()
            if now >= next_reap:
                next_reap = now + REAP_INTERVAL_S
                for reaper in list(self.reapers):
                    # A failing pool must not stop deadline enforcement.
                    with contextlib.suppress(Exception):
                        reaper.reap(now)


class _Guarded:
    __slots__ = ("_dog", "guard")

    def __init__(self, dog: Watchdog, guard: Guard) -> None:
        self._dog = dog
        self.guard = guard

    def __enter__(self) -> Guard:
        self._dog.watch(self.guard)
        return self.guard

    def __exit__(self, *exc: object) -> None:
        self._dog.unwatch(self.guard)


WATCHDOG = Watchdog()


class ConnectTimeout(Exception):
    """The connection was not established before the request's deadline."""


class _Outcome(Generic[T]):
    __slots__ = ("abandoned", "error", "event", "lock", "value")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.lock = threading.Lock()
        self.value: T | None = None
        self.error: BaseException | None = None
        self.abandoned = False


def connect_within(
    deadline: float, connect: Callable[[], T], late: Callable[[T | None], None], name: str
) -> T:
    """`connect()` on its own thread; its result if it finishes by `deadline`, else ConnectTimeout.

    When the caller has stopped waiting, `late(value or None)` receives what the connect produced
    (None for a failure), so the pool can keep or close it and release its slot."""
    outcome: _Outcome[T] = _Outcome()

    def run() -> None:
        try:
            value: T | None = connect()
            error: BaseException | None = None
        except BaseException as exc:
            value, error = None, exc
        with outcome.lock:
            outcome.value, outcome.error = value, error
            abandoned = outcome.abandoned
            outcome.event.set()
        if abandoned:
            late(value)

    threading.Thread(target=run, name=f"lepton-{name}-connect", daemon=True).start()
    outcome.event.wait(max(0.0, deadline - time.monotonic()))
    with outcome.lock:
        if not outcome.event.is_set():
            outcome.abandoned = True
            raise ConnectTimeout("connection not established before the request's deadline")
    if outcome.error is not None:
        raise outcome.error
    assert outcome.value is not None
    return outcome.value
