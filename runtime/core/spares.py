"""Fresh instances made ahead of their request, off the request's path.

A component served with a fresh instance per request (Spin's isolation, the default) pays for its
instantiation inside every request: about 0.45 ms of a Python spin-sdk hello's 2 ms. While a
component is busy, its next instance can be made on another thread while the current request
runs, so the next request finds it ready. Such a spare is an ordinary fresh instance: made from
the same compiled component, Store settings and WASI environment as one made in the request,
never run before it is taken, taken by exactly one request and closed with it. It belongs to one
component of one app version (a PreparedGuest), so it is never shared between apps or versions,
and a retired version's spare is closed with it.

When one is made (:class:`SparePolicy`):

* only for a busy component: one whose previous request started within ``busy_within_s``. An app
  that gets a request now and then would pay for a second instance per request it never uses;
* only where instantiating costs enough to be worth a thread hand-off (``auto``: at least
  ``worth_it_s``, measured on the component's own requests; a WAT hello takes ~0.05 ms);
* at most ``max_live`` spares exist in the process at once (each holds a pooling-allocator slot
  and its memory), and one left unused for ``idle_timeout_s`` is closed.

The same thread closes the Stores of the requests such a component served (:class:`DeferredCloses`):
closing one resets its memory for the next instance, about a quarter of a Python hello's CPU, and
done in the request it held up the next request (inline on the event loop, the whole loop; on a
worker thread, the app's CPU turn).

``LEPTON_SPARE_INSTANCES``: ``auto`` (the default), ``0`` (never), ``1`` (for every busy
component, whatever its instantiation costs). Instantiating runs the component's start functions;
one that calls into the host (there is no request to serve it) fails, and that component gets no
spares from then on (logged once). A spare that cannot be made because every pool slot is in use
is just not made; the next busy request asks again.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wasmtime import Store

from runtime.core.sweeper import SWEEPER

SPARES_ENV = "LEPTON_SPARE_INSTANCES"
# In wasmtime's error when the pooling allocator has no free slot ("maximum concurrent limit of N
# for component instances reached"): a passing state, unlike a start function that cannot run
# outside a request, so it does not end the component's spares.
POOL_FULL = "concurrent limit of"


@dataclass(frozen=True)
class SparePolicy:
    mode: str = "auto"  # "auto", "always" or "off"
    worth_it_s: float = 0.0002
    busy_within_s: float = 1.0
    idle_timeout_s: float = 10.0
    max_live: int = 32

    @classmethod
    def from_env(cls) -> SparePolicy:
        value = os.environ.get(SPARES_ENV, "").strip()
        modes = {"": "auto", "auto": "auto", "1": "always", "0": "off"}
        if value not in modes:
            raise ValueError(f"{SPARES_ENV}={value!r}: expected auto, 0 or 1")
        return cls(mode=modes[value])


@dataclass(eq=False)
class Spare:
    store: Store
    instance: Any  # wasmtime.component.Instance
    made_at: float


class SpareBudget:
    """How many spares may exist at once, and who holds them: the Runtime closes them all when it
    closes (a spare's Store holds the Engine and its reserved pool). Only components holding a
    spare are tracked (and watched for the idle timeout): a server with 10,000 apps has 10,000
    SpareInstances, nearly all of them empty."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.live = 0
        self._lock = threading.Lock()
        self._holders: weakref.WeakSet[SpareInstances] = weakref.WeakSet()
        self._closed = False

    def acquire(self) -> bool:
        with self._lock:
            if self._closed or self.live >= self.limit:
                return False
            self.live += 1
            return True

    def holding(self, holder: SpareInstances) -> bool:
        """`holder` now holds a spare (acquired before); False once closed (the caller closes it:
        a spare made while the Runtime closed)."""
        with self._lock:
            if self._closed:
                return False
            self._holders.add(holder)
        SWEEPER.watch(holder)
        return True

    def release(self, holder: SpareInstances | None = None) -> None:
        """A spare acquired by `holder` is gone (None: it was never held)."""
        with self._lock:
            self.live -= 1
            if holder is not None:
                self._holders.discard(holder)
        if holder is not None:
            SWEEPER.unwatch(holder)

    def close_all(self) -> None:
        with self._lock:
            self._closed = True
            holders = list(self._holders)
        for holder in holders:
            holder.close()


class DeferredCloses:
    """Stores of finished requests, closed on `submit`'s thread rather than on the request's path.

    At most `limit` wait at once (each holds its pooling-allocator slot and memory until closed):
    when the closing thread falls behind, as under full load, a request closes its own Store.
    """

    def __init__(self, submit: Callable[[Callable[[], None]], Any], limit: int = 4) -> None:
        self._submit = submit
        self.limit = limit
        self._lock = threading.Lock()
        self._queue: deque[Store] = deque()
        self._draining = False  # a drain job is queued or running

    def close_soon(self, store: Store) -> None:
        with self._lock:
            queued = len(self._queue) < self.limit
            if queued:
                self._queue.append(store)
                start, self._draining = not self._draining, True
        if not queued:
            store.close()
            return
        if start:
            try:
                self._submit(self._drain)
            except RuntimeError:  # the closing thread has shut down with its Runtime
                self._drain()

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._draining = False
                    return
                store = self._queue.popleft()
            store.close()

    def close_all(self) -> None:
        """Close what still waits (the Runtime closes: a queued drain job may have been cancelled)."""
        self._drain()

    def __len__(self) -> int:
        return len(self._queue)


class SpareInstances:
    """The spare of one component of one app version: at most one, made on `submit`'s thread."""

    def __init__(self, submit: Callable[[Callable[[], None]], Any], budget: SpareBudget, policy: SparePolicy,
                 log: logging.Logger, closes: DeferredCloses) -> None:
        self._submit = submit
        self.closes = closes  # where this component's finished Stores are closed
        self._budget = budget
        self.policy = policy
        self._log = log
        self._lock = threading.Lock()
        self._spare: Spare | None = None
        self._pending = False  # a spare is being made
        self._closed = False
        self._last_request = float("-inf")
        self.instantiate_s: float | None = None  # what instantiating cost in this component's requests
        self.disabled: str | None = None  # why this component gets no spares
        self.taken = 0  # requests served by a spare (for tests and the benchmark)

    def take(self, make: Callable[[], tuple[Store, Any]]) -> Spare | None:
        """The spare for the request starting now, or None (the request instantiates its own).
        When the component is busy, asks for the next one, to be made by `make` (a Store and
        instance, as a request would make them). `make` is not kept: it holds the component,
        which holds this object, and a cycle would keep a closed Runtime's Engine (and its
        reserved address space) alive until the cyclic GC ran."""
        now = time.monotonic()
        with self._lock:
            spare, self._spare = self._spare, None
            busy = now - self._last_request <= self.policy.busy_within_s
            self._last_request = now
            refill = busy and self.worth_it() and not self._pending and not self._closed
            if refill:
                self._pending = True
            if spare is not None:
                self.taken += 1
        if spare is not None:
            self._budget.release(self)
        if refill:
            try:
                self._submit(functools.partial(self._fill, make))
            except RuntimeError:  # the maker has shut down with its Runtime
                with self._lock:
                    self._pending = False
        return spare

    def note_instantiation(self, seconds: float) -> None:
        """What a request's own instantiation of this component cost (the auto policy's measure)."""
        previous = self.instantiate_s
        self.instantiate_s = seconds if previous is None else min(previous, seconds)

    def worth_it(self) -> bool:
        """Whether this component's instances are costly enough to make ahead (and close off the
        request's path)."""
        if self.disabled is not None or self.policy.mode == "off":
            return False
        if self.policy.mode == "always":
            return True
        return self.instantiate_s is not None and self.instantiate_s >= self.policy.worth_it_s

    def _fill(self, make: Callable[[], tuple[Store, Any]]) -> None:
        """On the maker's thread: make the spare, unless it is no longer wanted."""
        with self._lock:
            if self._closed or self._spare is not None:
                self._pending = False
                return
        if not self._budget.acquire():
            with self._lock:
                self._pending = False
            return
        try:
            store, instance = make()
        except Exception as exc:  # e.g. a start function calling into the host, or a full pool
            self._budget.release(None)
            if POOL_FULL in str(exc):  # every slot in use just now: the next request may try again
                with self._lock:
                    self._pending = False
                return
            with self._lock:
                self._pending = False
                self.disabled = f"{type(exc).__name__}: {exc}"
            self._log.warning("no instances made ahead for this component: instantiating it outside a request "
                              "failed (%s)", self.disabled)
            return
        with self._lock:
            self._pending = False
            # (holding() under the lock: a take() cannot release the spare before it is held)
            kept = not self._closed and self._budget.holding(self)
            if kept:
                self._spare = Spare(store, instance, time.monotonic())
        if kept:
            return
        store.close()
        self._budget.release(None)

    def sweep(self) -> None:
        """Close the spare if it has waited unused for longer than the idle timeout."""
        cutoff = time.monotonic() - self.policy.idle_timeout_s
        with self._lock:
            spare = self._spare
            if spare is None or spare.made_at > cutoff:
                return
            self._spare = None
        spare.store.close()
        self._budget.release(self)

    def close(self) -> None:
        """The app version is retired: its spare goes, and none is made again."""
        with self._lock:
            self._closed = True
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.store.close()
            self._budget.release(self)

    def __len__(self) -> int:
        return 0 if self._spare is None else 1
