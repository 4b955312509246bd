"""Runtime: the composition root. One per process: it owns the Engine, the epoch ticker, the
precompiled cache and the worker pool, lists the host capabilities and executors this host
offers, and turns LoadedApps into RunningApps.

This is the one module that names concrete capabilities and executors (as Spin's runtime-factors
crate lists its factors); runtime.core knows none of them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from wasmtime.component import Component

from registry.loaded import LoadedApp, LoadedComponent
from runtime.capabilities.key_value.host import KeyValueCapability
from runtime.capabilities.mqtt.host import MqttCapability
from runtime.capabilities.mysql.host import MysqlCapability
from runtime.capabilities.outbound_http.host import OutboundHttpCapability
from runtime.capabilities.postgres.host import PostgresCapability
from runtime.capabilities.redis.host import RedisCapability
from runtime.capabilities.sqlite.host import SqliteCapability
from runtime.capabilities.unsupported import UnsupportedCapability
from runtime.capabilities.variables.host import VariablesCapability
from runtime.capabilities.wasi.cli import CliCapability
from runtime.capabilities.wasi.clocks import ClocksCapability
from runtime.capabilities.wasi.filesystem import FilesystemCapability
from runtime.capabilities.wasi.http import HttpTypesCapability
from runtime.capabilities.wasi.io import IoCapability
from runtime.capabilities.wasi.sockets import SocketsCapability
from runtime.core.context import bind
from runtime.core.contract import Capability, ComponentInfo, Executor, ExecutorProvider
from runtime.core.guest import PreparedGuest
from runtime.core.reuse import InstanceReuse
from runtime.core.shared import SharedCodeCache
from runtime.core.spares import DeferredCloses, SpareBudget, SpareInstances, SparePolicy
from runtime.engine import patches
from runtime.engine.config import make_engine
from runtime.engine.epoch import EpochTicker
from runtime.engine.precompiled import CompiledCache
from runtime.engine.worker_pool import WorkerPool
from runtime.errors import AppLoadError
from runtime.http.app import RunningApp
from runtime.http.executors.inbound_http import InboundHttpProvider
from runtime.http.executors.spin1 import Spin1Provider
from runtime.http.executors.wagi import WagiProvider
from runtime.http.executors.wasi_http import WasiHttpProvider
from runtime.http.routes import HTTP_TRIGGER, RouteError, Router, private_components
from runtime.http.scheduling import ComponentSlot
from runtime.types import AppDirectory, AppSettings

log = logging.getLogger("lepton.runtime")

DEFAULT_WORKERS = 32  # guests blocked on slow clients or outbound calls each hold one thread
# A guest thread gives up the GIL on every call into wasmtime and needs it back for every host
# call; with CPython's default 5 ms switch interval it then queues behind the event loop thread
# (measured: 1 MiB echo 112 ms at 5 ms, 70-76 ms at 0.2-1 ms). Process-wide, set once.
SWITCH_INTERVAL_S = 0.001
# Guest threads run below the event loop's priority: the loop serves every app (dispatch, bodies,
# inline guests), so a busy app's threads must not take its core away.
GUEST_THREAD_NICENESS = 5
# A guest thread idle this long ends: a burst's threads (and their memory) do not stay forever.
GUEST_THREAD_IDLE_EXIT_S = 10.0


def default_cpu_turns() -> int:
    """How many of one app's guests may execute at once: half the cores this process may use
    (at least one), so one busy app leaves the rest of the machine to the others.
    LEPTON_CPU_TURNS overrides it (a whole number >= 1)."""
    override = os.environ.get("LEPTON_CPU_TURNS", "").strip()
    if override.isdigit() and int(override) >= 1:
        return int(override)
    return max(1, len(os.sched_getaffinity(0)) // 2)


def default_capabilities() -> list[Capability]:
    """Every host interface this host offers. Order matters: the first capability that provides
    an interface implements it, so Spin's come first (outbound HTTP claims
    wasi:http/outgoing-handler) and the WASI ones after."""
    return [
        VariablesCapability(),
        KeyValueCapability(),
        SqliteCapability(),
        OutboundHttpCapability(),
        RedisCapability(),
        PostgresCapability(),
        MysqlCapability(),
        MqttCapability(),
        UnsupportedCapability(),
        IoCapability(),
        CliCapability(),
        ClocksCapability(),
        HttpTypesCapability(),
        FilesystemCapability(),
        SocketsCapability(),
    ]


def default_executors() -> list[ExecutorProvider]:
    """How a component is entered, asked in order: the first provider that claims it runs it.
    The explicit ones (WAGI, Spin 1.x modules, Spin 2 inbound-http) before wasi:http, the default
    for components."""
    return [WagiProvider(), Spin1Provider(), InboundHttpProvider(), WasiHttpProvider()]


class Runtime:
    def __init__(
        self,
        cache_dir: Path,
        *,
        capabilities: Sequence[Capability] | None = None,
        executors: Sequence[ExecutorProvider] | None = None,
        workers: int = DEFAULT_WORKERS,
        cpu_turns_per_app: int | None = None,
    ) -> None:
        # Host functions defined before the patches keep the stock (slow, not thread-safe)
        # callbacks: patch before any Linker exists.
        patches.apply()
        if sys.getswitchinterval() > SWITCH_INTERVAL_S:
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.engine = make_engine(concurrency=workers)
        self.cache = CompiledCache(self.engine, Path(cache_dir) / "compiled")
        self.capabilities = list(capabilities) if capabilities is not None else default_capabilities()
        self.shared = SharedCodeCache(self.engine, self.capabilities)
        self.executors = list(executors) if executors is not None else default_executors()
        self._pool = WorkerPool(
            max_workers=workers,
            thread_name_prefix="lepton-guest",
            niceness=GUEST_THREAD_NICENESS,
            idle_exit_s=GUEST_THREAD_IDLE_EXIT_S,
        )
        # Fresh instances made ahead of their request (runtime/core/spares.py): one thread for the
        # process, as nice as the guests' (it does their apps' work).
        self.spare_policy = SparePolicy.from_env()
        self._spare_maker = WorkerPool(
            max_workers=1,
            thread_name_prefix="lepton-spare",
            niceness=GUEST_THREAD_NICENESS,
            idle_exit_s=GUEST_THREAD_IDLE_EXIT_S,
        )
        self._spare_budget = SpareBudget(self.spare_policy.max_live)
        self._deferred_closes = DeferredCloses(self._spare_maker.submit)
        self._app_threads = max(1, workers // 2)
        self._cpu_turns = cpu_turns_per_app if cpu_turns_per_app is not None else default_cpu_turns()
        self._ticker = EpochTicker(self.engine)
        # The host's other apps, for guests calling http://<app>.lepton.internal (set by the
        # router; None: such calls are refused). Read per request, so it may be set at any time.
        self.app_directory: AppDirectory | None = None

    def close(self) -> None:
        self._ticker.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._spare_maker.shutdown(wait=False, cancel_futures=True)
        self._spare_budget.close_all()
        self._deferred_closes.close_all()

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
        # All of the blocking work in one trip to a worker thread: with thousands of apps loading,
        # each trip is a turn of the event loop that serves every app.
        slots = await asyncio.to_thread(self._prepare_app, app, settings, router)
        return RunningApp(
            app, settings, router, slots, self._pool, self._app_threads, self._cpu_turns,
            directory=lambda: self.app_directory,
        )

    # -- blocking work, on a worker thread ----------------------------------------------------------
    def _prepare_app(self, app: LoadedApp, settings: AppSettings, router: Router) -> dict[str, ComponentSlot]:
        for cap in self.capabilities:
            # Optional app-wide load checks (e.g. Spin's required variables, allow-lists), run
            # whether or not a component imports the capability, as Spin validates the whole app.
            prepare_app = getattr(cap, "prepare_app", None)
            if prepare_app is not None:
                prepare_app(app, settings)
        slots: dict[str, ComponentSlot] = {}
        wanted = [(route.component_id, route.executor) for route in router.routes if route.component_id is not None]
        # Components on private routes serve only http://<id>.spin.internal calls, but load
        # (and fail the load) like the routed ones.
        wanted.extend(private_components(app.locked).items())
        for cid, executor in wanted:
            if cid in slots:
                continue
            component = app.components.get(cid)
            if component is None:
                raise AppLoadError(app.name, "component is not in the loaded app", component=cid)
            slots[cid] = self._prepare(app, component, settings, executor)
        return slots

    def _select_executor(self, info: ComponentInfo, config: Mapping[str, Any] | None) -> Executor | None:
        for provider in self.executors:
            executor = provider.select(info, config)
            if executor is not None:
                return executor
        return None

    def _prepare(
        self, app: LoadedApp, component: LoadedComponent, settings: AppSettings, executor_config: object
    ) -> ComponentSlot:
        cid = component.id
        try:
            shared_compiled = self.cache.load_shared(component.wasm_path, component.wasm_digest)
            compiled = shared_compiled.code
        except Exception as exc:
            raise AppLoadError(app.name, f"cannot compile {component.wasm_path.name}: {exc}", component=cid, field="source") from exc
        shared = self.shared.get(compiled)  # the linker and exports, one per digest for every app
        info = shared.info
        config = executor_config if isinstance(executor_config, dict) else None
        executor = self._select_executor(info, config)
        if executor is None:
            what = "component" if info.kind == "component" else "core module"
            raise AppLoadError(
                app.name,
                f"no executor for this {what} (executor {config!r}; exports: {', '.join(sorted(info.exports)) or 'none'})",
                component=cid,
                field="executor",
            )
        guest_log = logging.getLogger(f"lepton.app.{app.name}.{cid}")
        # (holding shared_compiled shares the code with later loads while this guest lives)
        guest = PreparedGuest(self.engine, app, component, settings, info, guest_log, compiled,
                              shared_compiled=shared_compiled)
        if settings.max_instance_reuse_count > 1 and executor.reuses_instances:
            why_not = shared.why_not_reusable(component.wasm_path)
            if why_not is None:
                guest.reuse = InstanceReuse(settings.max_instance_reuse_count, settings.idle_instance_timeout_s)
            else:
                guest_log.warning("max_instance_reuse_count ignored: a fresh instance per request, because %s", why_not)
        if guest.reuse is None and executor.makes_spares and self.spare_policy.mode != "off":
            guest.spares = SpareInstances(self._spare_maker.submit, self._spare_budget, self.spare_policy, guest_log,
                                          closes=self._deferred_closes)
        if isinstance(compiled, Component):
            guest.linker, guest.link_report = shared.linker, shared.link_report
            assert guest.link_report is not None
            if guest.link_report.async_funcs:
                raise AppLoadError(app.name, _async_imports_message(guest.link_report.async_funcs), component=cid, field="source")
            for cap in guest.link_report.capabilities:
                prepared = cap.prepare(app, component, settings)  # AppLoadError propagates as is
                if prepared is not None:
                    guest.prepared_state[cap.name] = prepared
            if not shared.instantiated_within(settings.memory_bytes, settings.timeout_s):
                self._trial_instantiate(guest)
                shared.record_instantiated(settings.memory_bytes, settings.timeout_s)
            if guest.link_report.unsupported:
                guest_log.warning("imports with no host implementation (calls trap): %s", ", ".join(guest.link_report.unsupported))
        # Whatever it imports: calls into capabilities that may wait refuse to run inline
        # (runtime/core/linking.py), and the component then stays on worker threads.
        may_inline = not executor.blocking and isinstance(compiled, Component)
        return ComponentSlot(guest=guest, executor=executor, may_inline=may_inline, log=guest_log)

    def _trial_instantiate(self, guest: PreparedGuest) -> None:
        """Instantiate once at load so link errors fail the load, not the first request. Once per
        shared component and limits: instantiation does not depend on the app (the linker and the
        component are the same; only the Store's memory limit and deadline could refuse it)."""
        ctx = guest.new_context(deadline=time.monotonic() + guest.settings.timeout_s)
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


__all__ = ["Runtime", "default_capabilities", "default_executors"]


def _async_imports_message(async_funcs: list[str]) -> str:
    shown = ", ".join(async_funcs[:4]) + (f" and {len(async_funcs) - 4} more" if len(async_funcs) > 4 else "")
    return (
        f"the component imports component-model async functions ({shown}). This host runs components "
        "on wasmtime-py, which can define only synchronous host functions, so it cannot run this "
        "component. Build it against the synchronous Spin interfaces (fermyon:spin/*@2.0.0, "
        "spin:postgres@3/@4, spin:sqlite@3.1.0's synchronous functions), as the Spin SDKs up to Spin 3 do"
    )
