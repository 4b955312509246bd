"""Runtime: one per process. Owns the Engine, the epoch ticker, the precompiled cache and the
worker pool, and turns LoadedApps into RunningApps."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from wasmtime.component import Component

from registry.loaded import LoadedApp, LoadedComponent
from runtime import compat
from runtime.app import ComponentSlot, RunningApp
from runtime.capabilities import (
    Capability,
    Executor,
    ExecutorProvider,
    default_capabilities,
    default_executors,
)
from runtime.context import RequestContext, bind
from runtime.engine import CompiledCache, EpochTicker, make_engine
from runtime.errors import AppLoadError
from runtime.guest import PreparedGuest, component_info
from runtime.http_executor import select_builtin
from runtime.linking import build_linker
from runtime.routes import HTTP_TRIGGER, RouteError, Router
from runtime.types import AppSettings
from runtime.worker_pool import WorkerPool

log = logging.getLogger("lepton.runtime")

DEFAULT_WORKERS = 32  # guests blocked on slow clients or outbound calls each hold one thread
# A guest thread gives up the GIL on every call into wasmtime and needs it back for every host
# call; with CPython's default 5 ms switch interval it then queues behind the event loop thread
# (measured: 1 MiB echo 112 ms at 5 ms, 70-76 ms at 0.2-1 ms). Process-wide, set once.
SWITCH_INTERVAL_S = 0.001


class Runtime:
    def __init__(
        self,
        cache_dir: Path,
        *,
        capabilities: Sequence[Capability] | None = None,
        executors: Sequence[ExecutorProvider] | None = None,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        compat.apply()
        if sys.getswitchinterval() > SWITCH_INTERVAL_S:
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.engine = make_engine(concurrency=workers)
        self.cache = CompiledCache(self.engine, Path(cache_dir) / "compiled")
        self.capabilities = list(capabilities) if capabilities is not None else default_capabilities()
        self.executors = list(executors) if executors is not None else list(default_executors())
        self._pool = WorkerPool(max_workers=workers, thread_name_prefix="lepton-guest")
        self._app_threads = max(1, workers // 2)
        self._ticker = EpochTicker(self.engine)

    def close(self) -> None:
        self._ticker.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def load_app(self, app: LoadedApp, settings: AppSettings) -> RunningApp:
        """Compile (cache misses only, off the loop), link and check every routed component."""
        try:
            router = Router.from_locked(app.locked)
        except RouteError as exc:
            raise AppLoadError(app.name, str(exc), field="triggers") from exc
        for trigger in app.locked.triggers:
            if trigger.trigger_type != HTTP_TRIGGER:
                raise AppLoadError(
                    app.name, f"trigger type {trigger.trigger_type!r} is not supported", field=f"trigger {trigger.id!r}"
                )
        for cap in self.capabilities:
            # Optional app-wide load checks (e.g. Spin's required variables, allow-lists), run
            # whether or not a component imports the capability, as Spin validates the whole app.
            prepare_app = getattr(cap, "prepare_app", None)
            if prepare_app is not None:
                await asyncio.to_thread(prepare_app, app, settings)
        slots: dict[str, ComponentSlot] = {}
        for route in router.routes:
            cid = route.component_id
            if cid is None or cid in slots:
                continue
            component = app.components.get(cid)
            if component is None:
                raise AppLoadError(app.name, "component is not in the loaded app", component=cid)
            slots[cid] = await asyncio.to_thread(self._prepare, app, component, settings, route.executor)
        return RunningApp(app, settings, router, slots, self._pool, self._app_threads)

    # -- blocking work, on a worker thread ----------------------------------------------------------
    def _prepare(
        self, app: LoadedApp, component: LoadedComponent, settings: AppSettings, executor_config: object
    ) -> ComponentSlot:
        cid = component.id
        try:
            compiled = self.cache.load(component.wasm_path, component.wasm_digest)
        except Exception as exc:
            raise AppLoadError(app.name, f"cannot compile {component.wasm_path.name}: {exc}", component=cid, field="source") from exc
        info = component_info(self.engine, compiled)
        config = executor_config if isinstance(executor_config, dict) else None
        executor: Executor | None = None
        for provider in self.executors:
            executor = provider.select(info, config)
            if executor is not None:
                break
        if executor is None:
            executor = select_builtin(info, config)
        if executor is None:
            what = "component" if info.kind == "component" else "core module"
            raise AppLoadError(
                app.name,
                f"no executor for this {what} (executor {config!r}; exports: {', '.join(sorted(info.exports)) or 'none'})",
                component=cid,
                field="executor",
            )
        guest_log = logging.getLogger(f"lepton.app.{app.name}.{cid}")
        guest = PreparedGuest(self.engine, app, component, settings, info, guest_log, compiled)
        if isinstance(compiled, Component):
            guest.linker, guest.link_report = build_linker(self.engine, compiled, self.capabilities)
            for cap in guest.link_report.capabilities:
                prepared = cap.prepare(app, component, settings)  # AppLoadError propagates as is
                if prepared is not None:
                    guest.prepared_state[cap.name] = prepared
            self._trial_instantiate(guest)
            if guest.link_report.unsupported:
                guest_log.warning("imports with no host implementation (calls trap): %s", ", ".join(guest.link_report.unsupported))
        builtin = all(type(c).__module__.startswith("runtime.wasi.") for c in guest.capabilities)
        may_inline = (
            not executor.blocking
            and isinstance(compiled, Component)
            and builtin
            and not any(c.blocking for c in guest.capabilities)
        )
        return ComponentSlot(guest=guest, executor=executor, may_inline=may_inline, log=guest_log)

    def _trial_instantiate(self, guest: PreparedGuest) -> None:
        """Instantiate once at load so link errors fail the load, not the first request."""
        ctx = RequestContext(
            app=guest.app,
            component=guest.component,
            settings=guest.settings,
            deadline=time.monotonic() + guest.settings.timeout_s,
            log=guest.log,
        )
        try:
            with bind(ctx):
                store = guest.new_store(ctx)
                guest.instantiate(store)
        except Exception as exc:
            raise AppLoadError(
                guest.app.name, f"cannot instantiate: {str(exc).strip().splitlines()[0]}", component=guest.component.id
            ) from exc
        finally:
            ctx.close()


__all__ = ["Runtime"]
