"""Timeouts: the engine's epoch advances on a ticker thread, and a Store's deadline is in ticks."""

from __future__ import annotations

import math
import threading

from wasmtime import Engine

EPOCH_TICK_S = 0.01  # epoch granularity: deadlines are precise to about this much


class EpochTicker:
    """Advances the engine's epoch every EPOCH_TICK_S so deadlines fire (daemon thread)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lepton-epoch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(EPOCH_TICK_S):
            self._engine.increment_epoch()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def deadline_ticks(seconds: float) -> int:
    # +1: the current tick may be about to end.
    return max(1, math.ceil(seconds / EPOCH_TICK_S) + 1)
