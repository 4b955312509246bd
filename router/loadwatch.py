"""What the status page shows about loads and reloads while they happen and after.

`LoadWatch` follows one app's load: the registry pull (layers and bytes, read from the registry's
own Progress object as it moves), then compiling and linking, and how it ended. AppManager makes
one per load and runs the load inside `watch.watching()`; router/loader.py marks the end of the
pull with `pulled(digest)`. Both go through ContextVars, so nothing is passed down the registry or
runtime APIs, and concurrent loads of different apps (each in its own task) never mix.

`ReloadRecord` is one pass of AppManager.reload: when, how it ended, and for a rejected
routes.toml each problem with its file and line.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from registry.progress import Progress
from router.config import Problem

_current: ContextVar[LoadWatch | None] = ContextVar("lepton_load_watch", default=None)


@dataclass(eq=False)
class LoadWatch:
    source: str  # as written in routes.toml
    started_at: float = field(default_factory=time.time)
    phase: str = "pulling"  # pulling | compiling | done | failed
    digest: str | None = None  # the manifest digest being loaded, once the pull knows it
    pull: Progress | None = None  # None while resolving, or when every blob was cached
    pull_s: float | None = None
    compile_s: float | None = None  # compile, link and checks, after the pull
    finished_at: float | None = None
    error: str | None = None
    _started: float = field(default_factory=time.monotonic, repr=False)
    _pulled: float | None = field(default=None, repr=False)
    _ended: float | None = field(default=None, repr=False)

    @contextlib.contextmanager
    def watching(self) -> Iterator[LoadWatch]:
        """Everything the load does inside this block (in this task, or in tasks and threads
        started from it) reports here."""
        token = _current.set(self)
        progress_token = Progress.watcher.set(self._on_progress)
        try:
            yield self
        finally:
            Progress.watcher.reset(progress_token)
            _current.reset(token)

    def _on_progress(self, progress: Progress) -> None:
        # Runs on the registry's worker thread; one attribute store, read by the event loop.
        self.pull = progress

    def pulled(self, digest: str) -> None:
        self._pulled = time.monotonic()
        self.pull_s = self._pulled - self._started
        self.digest = digest
        self.phase = "compiling"

    def finish(self, ok: bool, error: str | None = None) -> None:
        now = self._ended = time.monotonic()
        if self._pulled is not None:
            self.compile_s = now - self._pulled
        elif self.pull_s is None:
            self.pull_s = now - self._started  # failed before the pull ended
        self.finished_at = time.time()
        self.phase = "done" if ok else "failed"
        self.error = None if ok else error

    def to_json(self) -> dict[str, Any]:
        end = time.monotonic() if self._ended is None else self._ended
        return {
            "source": self.source,
            "phase": self.phase,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "elapsed_s": round(end - self._started, 3),
            "digest": self.digest,
            "pull": self.pull.snapshot() if self.pull is not None else None,
            "pull_s": _round(self.pull_s),
            "compile_s": _round(self.compile_s),
            "error": self.error,
        }


def pulled(digest: str) -> None:
    """The pull of the load running in this context is over: compiling starts. A no-op outside
    a watched load (the CLI's `pull`, tests calling the loader directly)."""
    watch = _current.get()
    if watch is not None:
        watch.pulled(digest)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@dataclass(frozen=True)
class ReloadRecord:
    at: float  # Unix time the reload ended
    seconds: float
    accepted: bool  # routes.toml was valid (the swap happened)
    problems: tuple[Problem, ...] = ()  # why it was rejected
    loaded: tuple[str, ...] = ()  # apps whose load this reload started (they join when done)
    failed: tuple[str, ...] = ()  # of those, the ones whose load failed (an older version may still serve)
    removed: tuple[str, ...] = ()

    def with_failure(self, app: str) -> ReloadRecord:
        """This record once `app`'s load, started by it, has failed (loads end after reloads)."""
        return replace(self, failed=(*self.failed, app)) if app in self.loaded else self

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "seconds": round(self.seconds, 3),
            "result": "applied" if self.accepted else "rejected",
            "problems": [p.to_json() for p in self.problems],
            "loaded": list(self.loaded),
            "failed": list(self.failed),
            "removed": list(self.removed),
        }
