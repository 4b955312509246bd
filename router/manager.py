"""The control plane: read routes.toml, load what changed in the background, swap the table atomically.

`reload()` is the only writer. It validates the file (a bad file changes nothing), plans the diff
(router/reconcile.py), loads new and changed apps concurrently while the current table keeps
serving, then publishes a new RoutingTable with one reference assignment. Versions that the new
table no longer uses are retired: they close when their last in-flight request ends. Reloads are
serialised; a change that arrives during a reload triggers exactly one more reload afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from router import config as config_mod
from router.config import AppConfig, ConfigError, RoutesConfig
from router.heap import HeapPolicy
from router.loadwatch import LoadWatch, ReloadRecord
from router.metrics import AppStats
from router.reconcile import compose, plan
from router.table import RoutingTable
from router.versions import AppVersion

log = logging.getLogger("lepton.router")

SERVING_STATES = frozenset({"ready", "updating"})
# A load that takes longer than this (a registry that stopped answering mid-pull, say) is reported
# as failed so the other apps' swap is not held up forever.
LOAD_TIMEOUT_S = 600.0
QUIET_S = 1.0  # no request for this long: a moment for heap maintenance (router/heap.py)


class Loader(Protocol):
    async def load(self, app: AppConfig) -> AppVersion: ...


@dataclass(frozen=True)
class Endpoint:
    """What a route points at: the version serving it and the app's live settings and counters."""

    version: AppVersion
    config: AppConfig  # desired config (routes, max_concurrent) as of the last swap
    stats: AppStats


@dataclass
class AppStatus:
    name: str
    config: AppConfig
    state: str = "loading"  # loading | ready | updating | failed
    error: str | None = None  # the last load error (the app may still serve an older version)
    error_at: float | None = None
    stats: AppStats = field(default_factory=AppStats)
    load: LoadWatch | None = None  # the load under way, or the last one (for the status page)


class AppManager:
    def __init__(self, routes_path: Path, loader: Loader) -> None:
        self.routes_path = routes_path
        self.loader = loader
        self.table: RoutingTable[Endpoint] = RoutingTable.build([])
        self.serving: dict[str, AppVersion] = {}
        self.status: dict[str, AppStatus] = {}
        self.config: RoutesConfig | None = None
        self.config_error: str | None = None  # why the last edit of routes.toml was rejected
        self.reloads = 0  # completed swaps
        self.reload_log: deque[ReloadRecord] = deque(maxlen=10)  # the latest last (status page)
        self.initial_done = asyncio.Event()
        self.unmatched = 0
        self.last_request_at = 0.0  # perf_counter() of the last routed request (set by the dispatcher)
        self.heap = HeapPolicy(busy=self._busy)
        self._lock = asyncio.Lock()
        self._again = False
        self._last_ok = True

    # -- reads (request path) --------------------------------------------------------------------

    def _busy(self) -> bool:
        """Requests arrived within the last second (in flight right now says little: a fast
        inline request starts and ends between two turns of the loop)."""
        return time.perf_counter() - self.last_request_at < QUIET_S

    @property
    def ready(self) -> bool:
        """Every app serves some version. An app being updated still serves its old one, so a hot
        swap never makes the instance look unready to a load balancer."""
        if not self.initial_done.is_set() or self.config is None:  # never had a valid routes.toml
            return False
        return all(s.state in SERVING_STATES for s in self.status.values())

    # -- reload ------------------------------------------------------------------------------------

    async def reload(self) -> bool:
        """Apply routes.toml. Returns False if the file was rejected. Safe to call concurrently:
        callers queue on the lock and whoever holds it re-reads the file until no change is pending.
        """
        self._again = True
        async with self._lock:
            while self._again:
                self._again = False
                self._last_ok = await self._reload_once()
            self.initial_done.set()
            return self._last_ok

    async def _reload_once(self) -> bool:
        started = time.monotonic()
        try:
            desired = await asyncio.to_thread(config_mod.load, self.routes_path)
        except ConfigError as exc:
            self.config_error = str(exc)
            self.reload_log.append(ReloadRecord(time.time(), time.monotonic() - started, False, tuple(exc.problems)))
            log.error("routes.toml rejected, still serving the previous configuration:\n%s", exc)
            return False
        self.config_error = None
        if self.config is not None and desired.server != self.config.server:
            log.warning("[server] settings changed: they take effect when the server restarts")
        self.config = desired
        return await self.apply(desired.apps)

    async def apply(self, desired: Mapping[str, AppConfig]) -> bool:
        serving_configs = {name: v.config for name, v in self.serving.items()}
        todo = plan(desired, serving_configs)
        for name, app in desired.items():
            status = self.status.get(name)
            if status is None:
                status = self.status[name] = AppStatus(name=name, config=app)
            status.config = app
            if name in todo.load:
                status.state = "updating" if name in self.serving else "loading"
        if todo.load:
            log.info("loading %s", ", ".join(todo.load))

        started = time.monotonic()
        results = await asyncio.gather(*(self._watched_load(desired[name]) for name in todo.load))
        loaded = {name: version for name, version in zip(todo.load, results, strict=True) if version is not None}

        outcome = compose(desired, self.serving, loaded)
        for name in todo.keep:
            # Unchanged load settings: same version, possibly new routes or max_concurrent.
            self.serving[name].config = desired[name]
        entries: list[tuple[str, tuple[str, ...], str, Endpoint]] = []
        for name, version in outcome.serving.items():
            app = desired[name]
            endpoint = Endpoint(version, app, self.status[name].stats)
            entries.extend((name, route.hosts, route.prefix, endpoint) for route in app.routes)
        table = RoutingTable.build(entries)  # validated config: no conflicts possible

        self.table = table  # the atomic swap: requests from now on see only the new table
        self.serving = dict(outcome.serving)
        self.reloads += 1

        for version in outcome.retired:
            version.retire()
        self.heap.after_swap(retired_any=bool(outcome.retired))
        for name in list(self.status):
            if name not in desired:
                del self.status[name]
        for name in desired:
            status = self.status[name]
            if name in self.serving:
                status.state = "ready"
                if name in loaded:
                    status.error = None
            else:
                status.state = "failed"
        self.reload_log.append(ReloadRecord(
            time.time(), time.monotonic() - started, True, loaded=tuple(loaded),
            failed=tuple(name for name in todo.load if name not in loaded), removed=tuple(todo.remove),
        ))
        if todo.load or todo.remove:
            log.info(
                "routing table swapped: %d apps serving, loaded %s, removed %s",
                len(self.serving), ", ".join(loaded) or "none", ", ".join(todo.remove) or "none",
            )
        return True

    async def _watched_load(self, app: AppConfig) -> AppVersion | None:
        """_load, followed for the status page: pull progress, then compile time. gather() runs
        each load in its own task, so the watch's context reaches this app's load only."""
        status = self.status[app.name]
        watch = status.load = LoadWatch(app.source)
        with watch.watching():
            version = await self._load(app)
        watch.finish(version is not None, status.error)
        return version

    async def _load(self, app: AppConfig) -> AppVersion | None:
        try:
            return await asyncio.wait_for(self.loader.load(app), LOAD_TIMEOUT_S)
        except Exception as exc:  # any failure of one app must not block the others
            status = self.status[app.name]
            if isinstance(exc, TimeoutError):
                exc = TimeoutError(f"loading {app.source} took longer than {LOAD_TIMEOUT_S:.0f}s")
            status.error = str(exc) or type(exc).__name__
            status.error_at = time.time()
            keeping = " (keeping the previous version)" if app.name in self.serving else ""
            log.error("app %s failed to load from %s%s: %s", app.name, app.source, keeping, exc)
            return None

    async def close(self) -> None:
        """Shutdown: release every version (after the server stopped taking requests)."""
        async with self._lock:
            self.heap.close()
            for version in self.serving.values():
                version.retire()
            self.serving = {}
            self.table = RoutingTable.build([])
