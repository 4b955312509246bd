"""One daemon thread for the process that lets kept instances go once idle past their timeout.

Instances kept for reuse (runtime/core/reuse.py) and instances made ahead (runtime/core/spares.py)
hold a pool slot and memory while nobody uses them; an app that stops receiving requests must give
them back without a request to notice.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Protocol

SWEEP_INTERVAL_S = 0.25  # how often idle instances past their timeout are looked for


class Sweepable(Protocol):
    def sweep(self) -> None:
        """Close what has been idle past its timeout."""


class Sweeper:
    def __init__(self) -> None:
        self._watched: weakref.WeakSet[Sweepable] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, keeper: Sweepable) -> None:
        with self._lock:
            self._watched.add(keeper)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lepton-idle-sweeper", daemon=True)
                self._thread.start()

    def unwatch(self, keeper: Sweepable) -> None:
        with self._lock:
            self._watched.discard(keeper)

    def _run(self) -> None:
        while True:
            time.sleep(SWEEP_INTERVAL_S)
            with self._lock:
                watched = list(self._watched)
            for keeper in watched:
                keeper.sweep()


SWEEPER = Sweeper()
