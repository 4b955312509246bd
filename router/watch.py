"""Reload triggers: changes to routes.toml (watchfiles, debounced) and SIGHUP.

The directory is watched, not the file: editors and `lepton-router add` replace the file by
rename, which a watch on the old inode would miss; a symlinked routes.toml is followed by reacting
to any change in the link's directory. Bursts of events (an editor writing in several
steps) are collapsed by watchfiles' debounce, and the file is read only once it has stopped
changing (same inode, size and mtime for SETTLE_S), so a truncate-then-write is not read between
its two steps; a reload already running picks up a later change through AppManager.reload's
coalescing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

import watchfiles

from router.manager import AppManager

log = logging.getLogger("lepton.router")

DEBOUNCE_MS = 200
SETTLE_S = 0.3  # the file must look the same for this long before it is read
SETTLE_MAX_S = 5.0  # a file that never stops changing is read anyway after this long


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

    def _is_ours(self, _change: watchfiles.Change, path: str) -> bool:
        return self.symlinked or Path(path).name == self.path.name

    async def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                async for _changes in watchfiles.awatch(
                    self.path.parent,
                    watch_filter=self._is_ours,
                    debounce=DEBOUNCE_MS,
                    step=50,
                    stop_event=self._stop,
                    recursive=False,
                ):
                    await self._settled()
                    log.info("%s changed: reloading", self.path)
                    self.trigger()
            except Exception:
                # E.g. the directory vanished for a moment; retry rather than stop hot reloads.
                log.exception("watching %s failed; retrying", self.path)
                await asyncio.sleep(1)

    def _signature(self) -> tuple[int, int, int, int] | None:
        try:
            st = os.stat(self.path)  # follows a symlinked file to what would be read
        except OSError:
            return None  # gone for a moment (replaced by rename): that is a state too
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    async def _settled(self) -> None:
        """Return once the file has looked the same for SETTLE_S (at most SETTLE_MAX_S)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_MAX_S
        last = self._signature()
        while loop.time() < deadline:
            await asyncio.sleep(SETTLE_S)
            now = self._signature()
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
