"""The control plane: read routes.toml, load what changed in the background, swap the table atomically.

`reload()` validates the file (a bad file changes nothing) and the apps directory's files (a bad
one costs only its own app: router/apps_merge.py), plans the diff (router/reconcile.py),
starts the loads it needs and publishes at once what can serve now: removals, route changes and
unchanged apps. Each load runs in the background and joins the table when it finishes, or is
reported failed (an app being updated keeps serving its old version meanwhile). So the first
table goes live with the apps that are ready, and a slow or hung registry never holds up the
other apps or a later edit: an edit that no longer wants a pending load abandons it (its result,
if any, is released), and one that wants the same load lets it run on.

Every table is built whole and swapped in with one reference assignment. Versions that no table
uses any more are retired: they close when their last in-flight request ends. While a new app is
loading, routes it takes over from an app the edit removed (or moved) keep pointing at that app's
version, so moving a host from one app to another leaves no gap of 404s. Reloads are serialised;
a change that arrives during a reload triggers exactly one more reload afterwards.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from router.apps_dir import FileResult
from router.apps_merge import Merged, Owned, merge
from router.available_routes import available_routes
from router.config import DEFAULT_LISTEN, AppConfig, ConfigError, Problem, RoutesConfig
from router.config_file import read_apps_dir, read_routes
from router.heap import HeapPolicy
from router.loadwatch import LoadWatch, ReloadRecord
from router.metrics import AppStats
from router.reconcile import Plan, compose, plan
from router.table import RoutingTable
from router.versions import AppVersion

log = logging.getLogger("lepton.router")

# Safety net above the registry's own deadline ([server] registry_deadline): a load that takes
# longer than this (a compile that never ends, say) is reported as failed.
LOAD_TIMEOUT_S = 600.0
LOGGED_NAMES = 20  # a swap's log line names this many serving apps at most
QUIET_S = 1.0  # no request for this long: a moment for heap maintenance (router/heap.py)
# Loads that finish close together join in one swap: at startup thousands of apps finish within
# seconds, and each swap rebuilds the whole table. The wait grows with what a swap costs (a big
# table takes tens of milliseconds of the loop that serves every app): swaps take at most about
# 1/JOIN_COST_FACTOR of the loop's time while loads keep finishing.
JOIN_INTERVAL_S = 0.1
JOIN_COST_FACTOR = 20


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
    # load_key() of the config whose first load failed: retrying it (every edit retries apps that
    # do not serve) keeps the app `failed` instead of making the instance unready again.
    failed_key: tuple[Any, ...] | None = None
    load: LoadWatch | None = None  # the load under way, or the last one (for the status page)


@dataclass(eq=False)
class _PendingLoad:
    config: AppConfig
    task: asyncio.Task[AppVersion] | None = None


class AppManager:
    def __init__(self, routes_path: Path, loader: Loader, *, listen: tuple[str, ...] = (DEFAULT_LISTEN,),
                 tls: bool = False) -> None:
        self.routes_path = routes_path
        self.loader = loader
        self.listen = listen  # for the "Available Routes" URLs logged when an app loads
        self.tls = tls
        self.table: RoutingTable[Endpoint] = RoutingTable.build([])
        self.serving: dict[str, AppVersion] = {}
        self.status: dict[str, AppStatus] = {}
        self.config: RoutesConfig | None = None  # the last valid routes.toml
        self.config_error: str | None = None  # why the last edit of routes.toml was rejected
        self.owned: dict[str, Owned] = {}  # the desired apps and the file defining each
        self.file_problems: tuple[Problem, ...] = ()  # of the apps directory's files, as last read
        self.reloads = 0  # completed swaps
        self.initial_done = asyncio.Event()
        self.unmatched = 0
        self.last_request_at = 0.0  # perf_counter() of the last routed request (set by the dispatcher)
        self.heap = HeapPolicy(busy=self._busy)
        self._lock = asyncio.Lock()
        self._again = False
        self._last_ok = True
        self._pending: dict[str, _PendingLoad] = {}
        self.reload_log: deque[ReloadRecord] = deque(maxlen=10)  # the latest last (status page)
        self._published: tuple[Any, ...] = ()  # what the live table was built from
        self._last_publish = 0.0
        self._publish_cost = 0.0  # seconds the last swap took
        self._join_timer: asyncio.TimerHandle | None = None  # a swap waiting for JOIN_INTERVAL_S
        self._settled = asyncio.Event()  # no load pending
        self._settled.set()

    # -- reads (request path) --------------------------------------------------------------------

    def _busy(self) -> bool:
        """Requests arrived within the last second (in flight right now says little: a fast
        inline request starts and ends between two turns of the loop)."""
        return time.perf_counter() - self.last_request_at < QUIET_S

    @property
    def ready(self) -> bool:
        """Every app has had its first load: it serves some version or its load failed (shown on
        the status page and logged). A failed app does not hold readiness back: one tenant's
        broken source or registry must not take the whole instance out of a load balancer. An app
        still on its first load does (the registry timeouts and deadline bound that), and so does
        a loaded app not yet in the table. An app being updated still serves its old version, so
        hot swaps never flip readiness."""
        if not self.initial_done.is_set() or self.config is None:  # never had a valid routes.toml
            return False
        if self._join_timer is not None:
            return False
        return all(s.state != "loading" for s in self.status.values())

    @property
    def pending(self) -> tuple[str, ...]:
        """Apps with a load in progress."""
        return tuple(self._pending)

    async def settled(self) -> None:
        """Wait until no load is pending (tests, benchmarks)."""
        await self._settled.wait()

    # -- reload ------------------------------------------------------------------------------------

    async def reload(self) -> bool:
        """Apply routes.toml. Returns False if the file was rejected. Safe to call concurrently:
        callers queue on the lock and whoever holds it re-reads the file until no change is pending.
        Returns once the edit is applied and its loads have started, not when they finish.
        """
        self._again = True
        async with self._lock:
            while self._again:
                self._again = False
                self._last_ok = await self._reload_once()
            self.initial_done.set()
            return self._last_ok

    @property
    def desired(self) -> dict[str, AppConfig]:
        return {name: owned.config for name, owned in self.owned.items()}

    @property
    def apps_dir(self) -> Path | None:
        return self.config.server.apps_dir if self.config is not None else None

    async def _reload_once(self) -> bool:
        """routes.toml and the apps directory, both read again: routes.toml rejected as a whole
        (the previous one stays), each directory file accepted or refused on its own."""
        started = time.monotonic()
        routes: RoutesConfig | None
        rejected: tuple[Problem, ...] = ()
        try:
            routes = await read_routes(self.routes_path)
        except ConfigError as exc:
            routes, rejected = None, tuple(exc.problems)
        base = routes or self.config
        if base is None:  # never had a valid routes.toml: nothing to serve
            self._rejected(rejected)
            self.reload_log.append(ReloadRecord(time.time(), time.monotonic() - started, False, rejected))
            return False
        files = await self._read_apps_dir(base)
        merged = merge(base.apps, str(self.routes_path), files, self.owned)
        if merged.toml_problems and routes is not None and self.config is not None:
            # routes.toml claims what a directory file's app holds: routes.toml is the newcomer.
            routes, rejected = None, merged.toml_problems
            merged = merge(self.config.apps, str(self.routes_path), files, self.owned)
        if routes is None:
            self._rejected(rejected)
            if merged.apps == self.owned:  # nothing else changed either: nothing to apply
                self._file_problems(merged)
                self.reload_log.append(ReloadRecord(time.time(), time.monotonic() - started, False, rejected))
                return False
        else:
            self.config_error = None
            # apps_dir applies at once (the next read uses it); the rest of [server] on restart.
            if self.config is not None and replace(routes.server, apps_dir=None) != replace(self.config.server,
                                                                                          apps_dir=None):
                log.warning("[server] settings changed: they take effect when the server restarts")
            self.config = routes
        self._file_problems(merged)
        self.owned = merged.apps
        todo = self.apply(merged.desired)
        self.reload_log.append(ReloadRecord(
            time.time(), time.monotonic() - started, routes is not None, rejected,
            loaded=tuple(todo.load), removed=tuple(todo.remove),
        ))
        return routes is not None

    def _rejected(self, problems: tuple[Problem, ...]) -> None:
        error = ConfigError(list(problems))
        self.config_error = str(error)
        log.error("routes.toml rejected, still serving the previous configuration:\n%s", error)

    async def _read_apps_dir(self, routes: RoutesConfig) -> list[FileResult]:
        """The apps directory's files; when it cannot be listed (unmounted for a moment, say),
        every app it defined keeps its last good version."""
        directory = routes.server.apps_dir
        if directory is None:
            return []
        try:
            return await read_apps_dir(directory, routes.defaults)
        except OSError as exc:
            kept = [FileResult(o.file, name, None) for name, o in self.owned.items() if o.result is not None]
            return [*kept, FileResult(str(directory), "", None, (Problem(str(directory), None, None, None,
                                                                        f"cannot list the apps directory: {exc}"),))]

    def _file_problems(self, merged: Merged) -> None:
        """Keep and log the apps directory's problems (each once, not again on every reload)."""
        before = set(self.file_problems)
        for problem in merged.problems:
            if problem not in before:
                serving = problem.app in merged.apps
                consequence = "keeping its last good version" if serving else "not served"
                log.error("app file rejected (%s): %s", consequence if problem.app else "ignored", problem)
        self.file_problems = merged.problems

    def apply(self, desired: Mapping[str, AppConfig]) -> Plan:
        """Start the loads `desired` needs and publish what can serve now (returns the plan).
        Synchronous: a load finishing meanwhile is handled before or after, never in the middle."""
        for name, pending in list(self._pending.items()):
            wanted = desired.get(name)
            if wanted is None or wanted.load_key() != pending.config.load_key():
                self._abandon(name)
        todo = plan(desired, {name: version.config for name, version in self.serving.items()})
        for name, app in desired.items():
            status = self.status.get(name)
            if status is None:
                status = self.status[name] = AppStatus(name=name, config=app)
            status.config = app
        for name in list(self.status):
            if name not in desired:
                del self.status[name]
        for name in todo.keep:
            # Unchanged load settings: same version, possibly new routes or max_concurrent.
            if self.serving[name].config.routes != desired[name].routes:
                self._log_routes(desired[name])
            self.serving[name].config = desired[name]
            self.status[name].state = "ready"  # (an update it was waiting for may just have been abandoned)
        started = [name for name in todo.load if name not in self._pending]
        for name in todo.load:
            status = self.status[name]
            if name in self.serving:
                status.state = "updating"
            elif not (status.state == "failed" and status.failed_key == desired[name].load_key()):
                status.state = "loading"
        for name in started:
            self._start_load(desired[name])
        if started:
            log.info("loading %s", ", ".join(started))
        self._publish(desired)
        return todo

    # -- loads -------------------------------------------------------------------------------------

    def _start_load(self, app: AppConfig) -> None:
        pending = _PendingLoad(app)
        watch = self.status[app.name].load = LoadWatch(app.source)
        with watch.watching():  # the task copies this context: pull progress reaches the watch
            pending.task = asyncio.create_task(self._load(app), name=f"load {app.name}")
        pending.task.add_done_callback(functools.partial(self._finished, app.name, pending))
        self._pending[app.name] = pending
        self._settled.clear()

    def _abandon(self, name: str) -> None:
        """Forget a pending load (its app was removed or changed again); a version it still
        produces is released when it arrives."""
        pending = self._pending.pop(name)
        if pending.task is not None:
            pending.task.cancel()
        if not self._pending:
            self._settled.set()

    async def _load(self, app: AppConfig) -> AppVersion:
        try:
            return await asyncio.wait_for(self.loader.load(app), LOAD_TIMEOUT_S)
        except TimeoutError:
            raise TimeoutError(f"loading {app.source} took longer than {LOAD_TIMEOUT_S:.0f}s") from None

    def _finished(self, name: str, pending: _PendingLoad, task: asyncio.Task[AppVersion]) -> None:
        if self._pending.get(name) is not pending:  # abandoned
            if not task.cancelled() and task.exception() is None:
                task.result().retire()
            return
        del self._pending[name]
        if not self._pending:
            self._settled.set()
        status = self.status[name]
        if task.cancelled():  # not by us (shutdown): nothing to report
            return
        exc = task.exception()
        if status.load is not None:
            status.load.finish(exc is None, None if exc is None else str(exc) or type(exc).__name__)
        if exc is None:
            self.serving[name] = task.result()
            self._log_routes(status.config)
            status.state = "ready"
            status.error = None
            status.failed_key = None
        else:
            status.error = str(exc) or type(exc).__name__
            status.error_at = time.time()
            if self.reload_log:  # the status page's last reload says which of its loads failed
                self.reload_log[-1] = self.reload_log[-1].with_failure(name)
            keeping = " (keeping the previous version)" if name in self.serving else ""
            log.error("app %s failed to load from %s%s: %s", name, pending.config.source, keeping, status.error)
            if name in self.serving:
                status.state = "ready"
            else:
                status.state = "failed"
                status.failed_key = pending.config.load_key()
        self._join()

    def _join(self) -> None:
        """Publish the outcome of a finished load now, or with others shortly (JOIN_INTERVAL_S)."""
        if self._join_timer is not None:
            return
        interval = max(JOIN_INTERVAL_S, JOIN_COST_FACTOR * self._publish_cost)
        wait = self._last_publish + interval - time.monotonic()
        if wait <= 0:
            self._publish_current()
        else:
            self._join_timer = asyncio.get_running_loop().call_later(wait, self._publish_current)

    def _publish_current(self) -> None:
        self._join_timer = None
        if self.config is not None:
            self._publish(self.desired)

    def _log_routes(self, app: AppConfig) -> None:
        """Where the app can be reached, the way `spin up` prints it."""
        lines = available_routes(app, self.listen, self.tls)
        owned = self.owned.get(app.name)
        origin = f" ({owned.file})" if owned is not None and owned.result is not None else ""
        log.info("Available Routes of %s%s:%s", app.name, origin, "".join(f"\n  {line}" for line in lines))

    # -- the routing table ---------------------------------------------------------------------------

    def _publish(self, desired: Mapping[str, AppConfig]) -> None:
        """Build the table from the serving versions (routes from `desired`) and swap it in if it
        differs from the live one; retire the versions no table uses any more."""
        if self._join_timer is not None:  # this swap includes whatever the timer was waiting for
            self._join_timer.cancel()
            self._join_timer = None
        old = self.table
        started = time.perf_counter()
        outcome = compose(desired, self.serving, {})
        self.serving = dict(outcome.serving)
        entries: list[tuple[str, tuple[str, ...], str, Endpoint]] = []
        for name, version in self.serving.items():
            app = desired[name]
            endpoint = Endpoint(version, app, self.status[name].stats)
            entries.extend((name, route.hosts, route.prefix, endpoint) for route in app.routes)
        entries.extend(self._handover(desired, entries, old))
        # What requests can tell apart (the dispatcher reads only max_concurrent from the config):
        # an edit that changes nothing of this, e.g. a new source still loading, needs no swap.
        built_from = tuple((name, hosts, prefix, id(e.version), e.config.max_concurrent, id(e.stats))
                           for name, hosts, prefix, e in entries)
        if built_from == self._published:
            return
        self.table = RoutingTable.build(entries)  # validated config: no conflicts possible
        self._published = built_from
        self._last_publish = time.monotonic()
        self.reloads += 1
        live = {id(e.version) for *_, e in entries} | {id(v) for v in self.serving.values()}
        retired = [v for v in _versions(old, outcome.retired) if id(v) not in live]
        for version in retired:
            version.retire()
        self.heap.after_swap(retired_any=bool(retired))
        self._publish_cost = time.perf_counter() - started
        if log.isEnabledFor(logging.INFO):  # (the list of names costs a sort of every app)
            names = sorted(self.serving)
            listed = ", ".join(names[:LOGGED_NAMES]) + (f", ... {len(names) - LOGGED_NAMES} more" if len(names) > LOGGED_NAMES else "")
            log.info(
                "routing table swapped: %d apps serving (%s), %d loading", len(names), listed or "none", len(self._pending)
            )

    def _handover(self, desired: Mapping[str, AppConfig], entries: list[tuple[str, tuple[str, ...], str, Endpoint]],
                  old: RoutingTable[Endpoint]) -> list[tuple[str, tuple[str, ...], str, Endpoint]]:
        """Routes of the live table that an app still on its first load will take over, and that
        no serving app claims: they stay where they are until that app joins or fails."""
        claimed = {(host, prefix) for _, hosts, prefix, _ in entries for host in hosts or ("",)}
        waiting = {
            (host, route.prefix)
            for name, app in desired.items()
            if name in self._pending and name not in self.serving
            for route in app.routes
            for host in route.hosts or ("",)
        }
        return [
            (route.app, (host,) if host else (), route.prefix, route.target)
            for host, route in old.routes
            if (host, route.prefix) in waiting and (host, route.prefix) not in claimed
        ]

    async def close(self) -> None:
        """Shutdown: abandon pending loads and release every version (after the server stopped
        taking requests)."""
        async with self._lock:
            for name in list(self._pending):
                self._abandon(name)
            if self._join_timer is not None:
                self._join_timer.cancel()
                self._join_timer = None
            self.heap.close()
            for version in _versions(self.table, self.serving.values()):
                version.retire()
            self.serving = {}
            self.table = RoutingTable.build([])


def _versions(table: RoutingTable[Endpoint], more: Iterable[AppVersion]) -> list[AppVersion]:
    """The versions a table routes to, and `more`, each once."""
    seen: dict[int, AppVersion] = {}
    for _, route in table.routes:
        seen.setdefault(id(route.target.version), route.target.version)
    for version in more:
        seen.setdefault(id(version), version)
    return list(seen.values())
