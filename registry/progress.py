"""Transfer progress: a live line per app on a TTY (app totals plus the layers in flight, bytes
each), one summary log line per app otherwise; and, for whoever set `watcher` around a pull (the
router's status page), the Progress object itself to read while it moves."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TextIO

log = logging.getLogger("lepton.registry")

_REDRAW_INTERVAL_S = 0.1


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class Progress:
    """Thread-safe byte counter for one app's transfer (layers run on worker threads)."""

    # Called with each new Progress. A ContextVar so that a caller can follow one app's pull
    # without new parameters through the registry API: asyncio.to_thread copies the caller's
    # context onto the worker thread that runs load_app, where the Progress is made.
    watcher: ContextVar[Callable[[Progress], None] | None] = ContextVar("registry_progress_watcher",
                                                                        default=None)

    def __init__(self, verb: str, label: str, stream: TextIO | None = None) -> None:
        self.verb = verb  # "pulled", "pushed", "mirrored"
        self.label = label
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._last_draw = 0.0
        self.total_bytes = 0
        self.done_bytes = 0
        self.total_layers = 0
        self.done_layers = 0
        self.cached_layers = 0
        self._active: dict[str, tuple[int, int]] = {}  # layer digest -> (bytes done, size)
        self.elapsed_s: float | None = None  # set by finish()
        watch = Progress.watcher.get()
        if watch is not None:
            watch(self)

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of the counters, for a reader on another thread."""
        with self._lock:
            return {
                "label": self.label,
                "layers_done": self.done_layers,
                "layers_total": self.total_layers,
                "layers_cached": self.cached_layers,
                "bytes_done": self.done_bytes,
                "bytes_total": self.total_bytes,
                "active": [{"digest": d, "bytes_done": done, "size": size} for d, (done, size) in self._active.items()],
                "seconds": round(self.elapsed_s if self.elapsed_s is not None else time.monotonic() - self._started, 3),
                "finished": self.elapsed_s is not None,
            }

    def plan(self, layers: int, total_bytes: int, cached_layers: int) -> None:
        with self._lock:
            self.total_layers, self.total_bytes, self.cached_layers = layers, total_bytes, cached_layers
        self._draw(force=True)

    def layer_started(self, digest: str, size: int) -> None:
        with self._lock:
            self._active[digest] = (0, size)

    def advance(self, nbytes: int, digest: str | None = None) -> None:
        with self._lock:
            self.done_bytes += nbytes
            if digest is not None and digest in self._active:
                done, size = self._active[digest]
                self._active[digest] = (done + nbytes, size)
        self._draw()

    def layer_done(self, digest: str | None = None) -> None:
        with self._lock:
            self.done_layers += 1
            if digest is not None:
                self._active.pop(digest, None)
        self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        if not self._tty:
            return
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last_draw < _REDRAW_INTERVAL_S:
                return
            self._last_draw = now
            layers = "  ".join(
                f"{digest.split(':')[-1][:12]} {_mb(done)}/{_mb(size)}"
                for digest, (done, size) in list(self._active.items())[:3]
            )
            line = (
                f"\r{self.label}: {self.done_layers}/{self.total_layers} layers, "
                f"{_mb(self.done_bytes)} / {_mb(self.total_bytes)}" + (f"  [{layers}]" if layers else "")
            )
        self._stream.write(line + "\x1b[K")
        self._stream.flush()

    def finish(self, detail: str = "") -> None:
        elapsed = self.elapsed_s = time.monotonic() - self._started
        if self._tty:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
        cached = f", {self.cached_layers} cached" if self.cached_layers else ""
        log.info(
            "%s %s: %d layers (%s transferred%s) in %.2fs%s",
            self.verb,
            self.label,
            self.total_layers,
            _mb(self.done_bytes),
            cached,
            elapsed,
            f" {detail}" if detail else "",
        )
