"""Turn one [apps.NAME] entry into a serving AppVersion: registry pull, then runtime load.

registry.load_app is blocking (oras-py is synchronous), so it runs on a daemon thread of its own
(kept for the next pull a while): a registry that stops answering holds that thread until the registry limits end it
([server] registry_*), and a daemon thread never holds up the process's exit meanwhile (asyncio's
default executor is joined at exit, and it also serves config reads and compiles: hung pulls must
not fill it). At most PULL_CONCURRENCY pulls run at once. The runtime compiles on a cache miss in
its own worker thread. The event loop keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

import registry
import runtime
from registry.limits import DEFAULT_LIMITS, RegistryLimits
from registry.loaded import LoadedApp
from router import loadwatch
from router.config import AppConfig
from router.versions import AppVersion, VersionInfo
from runtime.engine.worker_pool import WorkerPool

log = logging.getLogger("lepton.router")

T = TypeVar("T")

# Pulls are network-bound; 16 at once keep a startup of many apps moving even when a few
# registries hang (each hung pull holds its slot until its timeout or deadline).
PULL_CONCURRENCY = 16


# Pull threads: daemon threads (a hung registry never holds up the process's exit), kept for the
# next pull a while (starting a thread per pull on the event loop cost a startup of thousands of
# apps a third of the loop's time). PULL_CONCURRENCY pulls run at once, but a pull whose load was
# abandoned runs on until the registry limits end it, so the threads go well beyond that.
PULL_THREADS = 256
PULL_THREAD_IDLE_EXIT_S = 10.0
_PULL_POOL = WorkerPool(PULL_THREADS, "lepton-pull", idle_exit_s=PULL_THREAD_IDLE_EXIT_S)


async def in_daemon_thread(fn: Callable[[], T], threads: WorkerPool = _PULL_POOL) -> T:
    """fn() on a daemon thread; the result (or exception) comes back to the loop. If the awaiting
    task is cancelled, the thread runs on and its result is dropped."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(done: Future[T]) -> None:
        if not future.done():  # else cancelled meanwhile
            exc = done.exception()
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(done.result())

    def send(done: Future[T]) -> None:
        # (on the pull thread, once it is idle again: the next pull finds it free)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(deliver, done)

    # In the caller's context: the status page's load watch (a ContextVar) follows the pull.
    context = contextvars.copy_context()
    threads.submit(context.run, fn).add_done_callback(send)
    return await future


class AppLoader:
    def __init__(self, cache_dir: Path | None, state_root: Path, limits: RegistryLimits = DEFAULT_LIMITS) -> None:
        self.cache_dir = cache_dir or registry.default_cache_dir()
        self.state_root = state_root
        self.limits = limits
        self.runtime = runtime.Runtime(self.cache_dir)
        self._pulls: asyncio.Semaphore | None = None  # created on the loop that uses it
        self._pulling: dict[tuple[str, bool], asyncio.Future[LoadedApp]] = {}  # pulls in flight, by source

    async def load(self, app: AppConfig) -> AppVersion:
        started = time.monotonic()
        # Apps of one source that load at the same time (a template on many hosts, all starting
        # together) share one pull: same source, same moment, same answer from the registry.
        key = (app.resolved_source, app.insecure)
        pulling = self._pulling.get(key)
        if pulling is None:
            pulling = self._pulling[key] = asyncio.ensure_future(self._pull(app))
            pulling.add_done_callback(functools.partial(self._pull_done, key))
        # Shielded: an app whose load is abandoned must not cancel the pull the others wait for.
        # Each app gets a LoadedApp object of its own: the runtime keeps per-app state (resolved
        # variables, connection pools and their block lists, key-value stores) by that object.
        loaded = dataclasses.replace(await asyncio.shield(pulling))
        loadwatch.pulled(loaded.manifest_digest)  # the status page: the pull is over, compiling starts
        running = await self.runtime.load_app(loaded, app.settings(self.state_root))
        info = VersionInfo(
            source=app.source,
            reference=loaded.reference,
            digest=loaded.manifest_digest,
            name=loaded.name,
            version=loaded.version,
        )
        log.info(
            "loaded app %s from %s (%s) in %.2fs", app.name, app.source, loaded.manifest_digest,
            time.monotonic() - started,
        )
        return AppVersion(config=app, handler=running, info=info)

    async def _pull(self, app: AppConfig) -> LoadedApp:
        if self._pulls is None:
            self._pulls = asyncio.Semaphore(PULL_CONCURRENCY)
        pull = functools.partial(
            registry.load_app, app.resolved_source, cache_dir=self.cache_dir, insecure=app.insecure,
            limits=self.limits,
        )
        async with self._pulls:
            return await in_daemon_thread(pull)

    def _pull_done(self, key: tuple[str, bool], pulling: asyncio.Future[LoadedApp]) -> None:
        if self._pulling.get(key) is pulling:
            del self._pulling[key]  # the next load of this source asks the registry again
        if not pulling.cancelled():
            pulling.exception()  # (retrieved: nobody may be waiting any more)

    def close(self) -> None:
        close = getattr(self.runtime, "close", None)
        if close is not None:
            close()
