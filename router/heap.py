"""Keep Python's cyclic GC off the request path once apps are loaded.

Loaded apps are long-lived heaps of objects (components, linkers, host bindings). Every full
collection walks all of them, and with many apps that pause lands on whichever requests are
running: measured with 1,000 apps, p99 went from ~25 ms to ~128 ms and throughput dropped by a
third. After each swap we `gc.freeze()` everything alive, so collections only look at objects
created since: the per-request garbage.

Frozen objects are never collected, so the cyclic garbage a released version leaves behind would
stay. Hence a rate-limited maintenance pass: some time after a swap retired versions (their
in-flight requests have ended by then), unfreeze, collect once, freeze again; at most once per
MAINTENANCE_INTERVAL_S, so frequent swaps cost one pause now and then, not one each.

That pass walks every object in the process (measured: ~60 ms with one app loaded), so it waits
for a quiet moment (the manager's `busy`: no request for a second), and is forced only once it
has waited MAINTENANCE_MAX_WAIT_S. And a swap first collects the young generations before
freezing, so the garbage of requests running at that moment is freed as usual instead of frozen
with the apps (that was most of what the pass had to free: ~13,000 objects after 14 swaps).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger("lepton.router")

MAINTENANCE_DELAY_S = 30.0  # after a swap that retired versions
MAINTENANCE_INTERVAL_S = 60.0  # at most one full collection per interval
MAINTENANCE_MAX_WAIT_S = 600.0  # a busy server takes the pause at the latest this long after it was due
IDLE_CHECK_S = 0.2  # while waiting for a moment with no request in flight


class HeapPolicy:
    def __init__(self, busy: Callable[[], bool] = lambda: False) -> None:
        self._busy = busy  # whether requests are arriving now
        self._pending: asyncio.TimerHandle | None = None
        self._last_maintenance = 0.0
        self._due_at = 0.0

    def after_swap(self, retired_any: bool) -> None:
        gc.collect(1)
        gc.freeze()
        if retired_any and self._pending is None:
            due = max(MAINTENANCE_DELAY_S, self._last_maintenance + MAINTENANCE_INTERVAL_S - time.monotonic())
            self._due_at = time.monotonic() + due
            self._pending = asyncio.get_running_loop().call_later(due, self._maintain)

    def _maintain(self) -> None:
        self._pending = None
        if self._busy() and time.monotonic() - self._due_at < MAINTENANCE_MAX_WAIT_S:
            self._pending = asyncio.get_running_loop().call_later(IDLE_CHECK_S, self._maintain)
            return
        self._last_maintenance = time.monotonic()
        started = time.perf_counter()
        gc.unfreeze()
        freed = gc.collect()
        gc.freeze()
        log.debug("heap maintenance: %d objects freed in %.1f ms", freed, (time.perf_counter() - started) * 1000)

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
