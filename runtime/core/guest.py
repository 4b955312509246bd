"""A component (or core module) ready to serve: compiled, linked, with its exports resolved.

One PreparedGuest per component per loaded app. Each request makes a fresh Store (limits,
epoch deadline, WASI environment) and a fresh instance: Spin's per-request isolation.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wasmtime import Engine, Module, Store, WasiConfig, WasmtimeError
from wasmtime.component import Component, ExportIndex, Func, Instance, Linker

from registry.loaded import LoadedApp, LoadedComponent
from runtime.core.context import RequestContext
from runtime.core.contract import ComponentInfo
from runtime.core.linking import LinkReport
from runtime.core.reuse import InstanceReuse
from runtime.core.spares import SpareInstances
from runtime.engine.epoch import deadline_ticks
from runtime.engine.patches import Signature, raise_pending_host_error, signature_of
from runtime.engine.precompiled import SharedCompiled
from runtime.types import AppSettings


def component_info(engine: Engine, compiled: Component | Module) -> ComponentInfo:
    if isinstance(compiled, Component):
        ty = compiled.type
        return ComponentInfo(
            kind="component",
            exports=frozenset(ty.exports(engine)),
            imports=frozenset(ty.imports(engine)),
        )
    return ComponentInfo(
        kind="module",
        exports=frozenset(e.name for e in compiled.exports),
        imports=frozenset(f"{i.module}/{i.name}" for i in compiled.imports),
    )


@dataclass(eq=False)
class PreparedGuest:
    engine: Engine
    app: LoadedApp
    component: LoadedComponent
    settings: AppSettings
    info: ComponentInfo
    log: logging.Logger
    compiled: Component | Module
    shared_compiled: SharedCompiled | None = None  # the cache's handle for `compiled` (held, never read)
    linker: Linker | None = None  # component linker; None for core modules (executor links)
    link_report: LinkReport | None = None
    prepared_state: dict[str, Any] = field(default_factory=dict)  # capability name -> prepare()
    reuse: InstanceReuse | None = None  # idle instances kept for the next request (opt-in)
    spares: SpareInstances | None = None  # fresh instances made ahead (runtime/core/spares.py)
    _exports: dict[tuple[str, str], ExportIndex] = field(default_factory=dict)
    _signatures: dict[tuple[str, str], Signature] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def module(self) -> Module | None:
        return self.compiled if isinstance(self.compiled, Module) else None

    def new_context(self, deadline: float, on_block: Callable[[], None] | None = None) -> RequestContext:
        """The per-request state of one run of this component (see runtime.core.context)."""
        return RequestContext(
            app=self.app,
            component=self.component,
            settings=self.settings,
            deadline=deadline,
            log=self.log,
            prepared=self.prepared_state,
            on_block=on_block,
        )

    def new_store(self, ctx: RequestContext, timeout_s: float | None = None) -> Store:
        store = self._store(timeout_s)
        self._close_with(ctx, store)
        return store

    def _close_with(self, ctx: RequestContext, store: Store) -> None:
        """Close `store` when the request's guest work ends, however it ends.

        The Store owns the instance (its slot in the pooling allocator, its linear memory): left to
        reference counting, a failed run (an exception's traceback holds the frames that hold the
        Store) waits for the cyclic GC, and abandoned uploads once exhausted the pool for every app
        that way. Registered first, so it runs after every other cleanup of the request. For a
        component that gets instances made ahead, the closing (its memory reset) is handed to the
        thread that makes them (runtime/core/spares.py). (A Store no request owns comes from
        new_instance: its keeper closes it.)"""
        spares = self.spares
        if spares is not None and spares.worth_it():
            ctx.cleanups.insert(0, functools.partial(spares.closes.close_soon, store))
        else:
            ctx.cleanups.insert(0, store.close)

    def _store(self, timeout_s: float | None = None) -> Store:
        """A Store with the app's memory limit, an epoch deadline and the WASI environment."""
        store = Store(self.engine)
        store.set_epoch_deadline(deadline_ticks(self.settings.timeout_s if timeout_s is None else timeout_s))
        wasi = WasiConfig()
        if self.component.locked.env:
            wasi.env = sorted(self.component.locked.env.items())
        store.set_wasi(wasi)
        store.set_limits(memory_size=self.settings.memory_bytes)
        return store

    def fresh_instance(self, ctx: RequestContext, timeout_s: float) -> tuple[Store, Instance]:
        """A fresh instance for this request, closed with it: the one made ahead when there is
        one (runtime/core/spares.py), else one made now."""
        spares = self.spares
        spare = spares.take(self.new_instance) if spares is not None else None
        if spare is not None:
            self._close_with(ctx, spare.store)
            self.renew_store(spare.store, timeout_s)
            return spare.store, spare.instance
        started = time.perf_counter()
        store = self.new_store(ctx, timeout_s)
        instance = self.instantiate(store)
        if spares is not None:
            spares.note_instantiation(time.perf_counter() - started)
        return store, instance

    def new_instance(self, timeout_s: float | None = None) -> tuple[Store, Instance]:
        """A Store and instance that no request owns: one kept for reuse (runtime/core/reuse.py)
        or made ahead (runtime/core/spares.py); its keeper closes it. Without `timeout_s`, start
        functions get the app's whole timeout, and the request that takes it sets its own deadline
        (renew_store)."""
        store = self._store(timeout_s)
        try:
            return store, self.instantiate(store)
        except BaseException:
            store.close()
            raise

    def renew_store(self, store: Store, timeout_s: float) -> None:
        """Ready a kept Store for its next request: a deadline of its own."""
        store.set_epoch_deadline(deadline_ticks(timeout_s))

    def instantiate(self, store: Store) -> Instance:
        assert self.linker is not None and isinstance(self.compiled, Component)
        try:
            return self.linker.instantiate(store, self.compiled)
        except WasmtimeError as exc:
            try:  # a start function's host call failed: its own error says why
                raise_pending_host_error()
            except Exception as host_error:
                raise host_error from exc
            raise

    def export(self, store: Store, instance: Instance, interface_export: str, func_name: str) -> tuple[Func, Signature]:
        """A function of an exported interface, with its compiled signature (both cached)."""
        key = (interface_export, func_name)
        assert isinstance(self.compiled, Component)
        with self._lock:
            index = self._exports.get(key)
            if index is None:
                outer = self.compiled.get_export_index(interface_export)
                inner = self.compiled.get_export_index(func_name, outer) if outer is not None else None
                if inner is None:
                    raise LookupError(f"component does not export {interface_export}#{func_name}")
                index = self._exports[key] = inner
        func = instance.get_func(store, index)
        if func is None:
            raise LookupError(f"{interface_export}#{func_name} is not a function")
        sig = self._signatures.get(key)
        if sig is None:
            sig = self._signatures[key] = signature_of(func, store)
        return func, sig
