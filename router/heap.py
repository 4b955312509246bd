"""Keep Python's cyclic GC off the request path once apps are loaded.

Loaded apps are long-lived heaps of objects (components, linkers, host bindings). Every full
collection walks all of them, and with many apps that pause lands on whichever requests are
running: measured with 1,000 apps, p99 went from ~25 ms to ~128 ms and throughput dropped by a
third. After each swap we `gc.freeze()` everything alive, so collections only look at objects
created since: the per-request garbage.

Frozen objects are never collected, so the cyclic garbage a released version leaves behind would
stay. Hence a rate-limited maintenance pass: some time after a swap retired versions (their
in-flight requests have ended by then), unfreeze, collect once, freeze again; at most once per
MAINTENANCE_INTERVAL_S, so frequent swaps cost one short pause now and then, not one each.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger("lepton.router")

MAINTENANCE_DELAY_S = 30.0  # after a swap that retired versions
MAINTENANCE_INTERVAL_S = 60.0  # at most one full collection per interval


class HeapPolicy:
    def __init__(self) -> None:
        self._pending: asyncio.TimerHandle | None = None
        self._last_maintenance = 0.0

    def after_swap(self, retired_any: bool) -> None:
        gc.freeze()
        if retired_any and self._pending is None:
            due = max(MAINTENANCE_DELAY_S, self._last_maintenance + MAINTENANCE_INTERVAL_S - time.monotonic())
            self._pending = asyncio.get_running_loop().call_later(due, self._maintain)

    def _maintain(self) -> None:
        self._pending = None
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
