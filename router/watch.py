"""Reload triggers: changes to routes.toml (watchfiles, debounced) and SIGHUP.

The directory is watched, not the file: editors and `lepton-router add` replace the file by
rename, which a watch on the old inode would miss; a symlinked routes.toml is followed by reacting
to any change in the link's directory. Bursts of events (an editor writing in several
steps) are collapsed by watchfiles' debounce, and the file is read only once it has stopped
changing (same inode, size and mtime for SETTLE_S), so a truncate-then-write is not read between
its two steps; a reload already running picks up a later change through AppManager.reload's
coalescing.

The apps directory ([server] apps_dir) is watched too: an event for an app file (router/apps_dir.py
says which names are), or for a `..NAME` entry (Kubernetes updates a ConfigMap volume by swapping
its hidden `..data` link, the visible files being links through it), starts a reload once every
app file has stopped changing, so a file still being written is not read half-way.

The apps' runtime config files (routes.toml `runtime_config`) and the dotenv files of their env
variables providers are watched the same way, their directories next to routes.toml's: the set
comes from the apps being served (routes.toml and the apps directory), and the watch is restarted
when a reload adds a directory (checked every WATCH_INTERVAL_S).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

import watchfiles

from router.apps_dir import is_app_file
from router.manager import AppManager

log = logging.getLogger("lepton.router")

DEBOUNCE_MS = 200
SETTLE_S = 0.3  # the file must look the same for this long before it is read
SETTLE_MAX_S = 5.0  # a file that never stops changing is read anyway after this long
WATCH_INTERVAL_S = 1.0  # how often the set of directories to watch is checked


class ConfigWatcher:
    def __init__(self, manager: AppManager, *, watch_file: bool = True) -> None:
        self.manager = manager
        self.watch_file = watch_file
        # Not resolved: with a symlinked file (e.g. a Kubernetes ConfigMap: routes.toml ->
        # ..data/routes.toml, updated by swapping the ..data link) the directory holding the link
        # is the one that sees the change, and then any event there may be ours.
        self.path = Path(os.path.abspath(manager.routes_path))
        self.symlinked = self.path.is_symlink()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reloads: set[asyncio.Task[bool]] = set()

    def start(self) -> None:
        if self.watch_file:
            self._task = asyncio.create_task(self._watch())
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            # Not available on Windows or outside the main thread; the file watch still works.
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

    def _on_sighup(self) -> None:
        log.info("SIGHUP: reloading %s", self.path)
        self.trigger()

    def trigger(self) -> None:
        task = asyncio.create_task(self.manager.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    def _files(self) -> tuple[Path, ...]:
        """routes.toml, then the runtime config files the current configuration names."""
        apps = self.manager.desired.values()
        extra = {a.runtime_config_path for a in apps if a.runtime_config_path is not None}
        # ... and the dotenv files their env variables providers read.
        extra |= {p.dotenv_path for a in apps if a.runtime_config is not None
                  for p in a.runtime_config.variables_providers if p.dotenv_path is not None}
        return (self.path, *sorted(extra - {self.path}))

    def _apps_dir(self) -> str | None:
        directory = self.manager.apps_dir
        return os.path.abspath(directory) if directory is not None else None

    def _app_files(self) -> tuple[Path, ...]:
        """The apps directory's app files, as they are now."""
        directory = self._apps_dir()
        if directory is None:
            return ()
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return ()
        return tuple(Path(directory, name) for name in names if is_app_file(name))

    def _dirs(self) -> tuple[str, ...]:
        # A runtime config's directory (or the apps directory) that is gone cannot be watched
        # (the next reload says so; the directory is watched once it exists); routes.toml's always is.
        files = self._files()
        dirs = [str(f.parent) for f in files if f == self.path or f.parent.is_dir()]
        apps_dir = self._apps_dir()
        if apps_dir is not None and os.path.isdir(apps_dir):
            dirs.append(apps_dir)
        return tuple(dict.fromkeys(dirs))

    def _filter(self) -> Callable[[watchfiles.Change, str], bool]:
        routes_dir = os.path.abspath(self.path.parent)

        def is_ours(_change: watchfiles.Change, path: str) -> bool:
            # The files of the configuration as it is when the event comes in: a file that a
            # reload just named counts at once when its directory is already watched.
            where = (os.path.dirname(os.path.abspath(path)), os.path.basename(path))
            # (An app file first: that check is cheap, and the list of configuration files grows
            # with the number of apps, while a directory of many apps sends events in bursts.)
            if where[0] == self._apps_dir() and (is_app_file(where[1]) or where[1].startswith("..")):
                return True
            wanted = {(os.path.abspath(f.parent), f.name) for f in self._files()}
            return where in wanted or (self.symlinked and where[0] == routes_dir)

        return is_ours

    async def _watch(self) -> None:
        rescan = False
        while not self._stop.is_set():
            try:
                dirs = self._dirs()
                restart = asyncio.Event()
                monitor = asyncio.create_task(self._monitor(dirs, restart, rescan))
                try:
                    async for changes in watchfiles.awatch(
                        *dirs,
                        watch_filter=self._filter(),
                        debounce=DEBOUNCE_MS,
                        step=50,
                        stop_event=restart,
                        recursive=False,
                    ):
                        await self._settled()
                        log.info("%s changed: reloading", ", ".join(sorted({Path(p).name for _, p in changes})))
                        self.trigger()
                finally:
                    monitor.cancel()
                # Ended because a reload named another directory (the apps directory, a runtime
                # config elsewhere): what changed there before the new watch began is picked up
                # by one more reload.
                rescan = True
            except Exception:
                # E.g. the directory vanished for a moment; retry rather than stop hot reloads.
                log.exception("watching %s failed; retrying", self.path)
                await asyncio.sleep(1)

    async def _monitor(self, dirs: tuple[str, ...], restart: asyncio.Event, rescan: bool) -> None:
        """Alongside a watch of `dirs`: reload once if asked (the watch is in place by the time
        this task runs), then end the watch when the server stops or the directories to watch
        change. A timer, not the watch's own wake-ups: events that the filter drops (a log file
        next to routes.toml, say) would keep those from ever coming."""
        try:
            if rescan:
                await self._settled()
                log.info("now watching %s: reloading", ", ".join(dirs))
                self.trigger()
            while not self._stop.is_set() and self._dirs() == dirs:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), WATCH_INTERVAL_S)
        finally:
            restart.set()

    def _signature(self, path: Path) -> tuple[int, int, int, int] | None:
        try:
            st = os.stat(path)  # follows a symlinked file to what would be read
        except OSError:
            return None  # gone for a moment (replaced by rename): that is a state too
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def _signatures(self) -> list[tuple[Path, tuple[int, int, int, int] | None]]:
        return [(f, self._signature(f)) for f in (*self._files(), *self._app_files())]

    async def _settled(self) -> None:
        """Return once the configuration's files (and the set of app files) have looked the
        same for SETTLE_S (at most SETTLE_MAX_S)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_MAX_S
        last = self._signatures()
        while loop.time() < deadline:
            await asyncio.sleep(SETTLE_S)
            now = self._signatures()
            if now == last:
                return
            last = now

    async def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._reloads):
            task.cancel()
