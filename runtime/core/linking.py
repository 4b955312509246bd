"""Build a component's Linker from the capabilities, by the component's own import names.

Each imported instance is defined under its exact name (so any wasi 0.2.x version links, and
the exact definition shadows wasmtime's semver match). Interfaces nobody provides are left to
wasmtime's WASI when it serves them (WASIP2_KEPT); otherwise every function becomes a trap that
names the import, so the component links and fails only if it actually calls it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from wasmtime import Engine, _ffi
from wasmtime.component import Component, ComponentInstanceType, FuncType, Linker, ResourceType

from runtime.core.context import current_or_none
from runtime.core.contract import Capability, InterfaceImpl, resource_type_id, split_import_name
from runtime.engine import patches
from runtime.errors import GuestTrap, NeedsWorkerThread

log = logging.getLogger("lepton.runtime")

# Served by wasmtime's own WASI (add_wasip2): their types never involve Python resources.
WASIP2_KEPT = frozenset(
    {
        "wasi:cli/environment",
        "wasi:cli/exit",
        "wasi:cli/terminal-input",
        "wasi:cli/terminal-output",
        "wasi:cli/terminal-stdin",
        "wasi:cli/terminal-stdout",
        "wasi:cli/terminal-stderr",
        "wasi:clocks/wall-clock",
        "wasi:random/random",
        "wasi:random/insecure",
        "wasi:random/insecure-seed",
        "wasi:sockets/network",
        "wasi:sockets/instance-network",
    }
)


@dataclass
class LinkReport:
    """What linking decided, per import name (for logs, load errors and execution-path choice)."""

    provided: dict[str, str] = field(default_factory=dict)  # import -> capability name
    wasip2: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)  # imports defined as traps
    # "import#function" of every component-model `async` function imported (Spin 4's outbound
    # Redis, MySQL and MQTT, key-value, variables...): wasmtime-py defines only synchronous host
    # functions and wasmtime refuses them for an async import, so no component with one can run.
    async_funcs: list[str] = field(default_factory=list)
    capabilities: list[Capability] = field(default_factory=list)  # those the component uses


def _trap(import_name: str, func_name: str) -> Any:
    message = f"unsupported import {import_name}#{func_name}"

    def trap(store: Any, *args: Any) -> Any:
        raise GuestTrap(message)

    return trap


def _worker_thread_only(func: Any, what: str) -> Any:
    """`func`, refusing to run while its guest runs inline on the event loop.

    A component runs inline only when its recent runs were cheap, whatever it imports: the Spin
    SDKs import every Spin interface (key-value, databases, outbound HTTP...) whether the app uses
    them or not. A call into a capability that may wait or act outside the guest then gives the
    inline run up before anything happened, and the request runs again on a worker thread. So
    the first such call is never made twice, and a guest never waits on the network on the loop."""

    def guarded(store: Any, *args: Any) -> Any:
        ctx = current_or_none()
        if ctx is not None and ctx.inline:
            raise NeedsWorkerThread(f"{what}, which may wait or act outside the guest")
        return func(store, *args)

    return guarded


def is_async(ty: FuncType) -> bool:
    """Whether a component function type is `async` (wasmtime-py has no Python accessor for it)."""
    return bool(_ffi.wasmtime_component_func_type_async(ty.ptr()))


def _owned_resources(exports: dict[str, Any]) -> set[str]:
    """For an interface nobody implements: resources that have functions are surely its own;
    other resource-typed names are usually `use`d aliases (e.g. `headers`), which must not be
    redefined."""
    names = set()
    for name in exports:
        if name.startswith("[") and "]" in name:
            rest = name.split("]", 1)[1]
            names.add(rest.split(".", 1)[0])
    return names


def build_linker(engine: Engine, component: Component, capabilities: Sequence[Capability]) -> tuple[Linker, LinkReport]:
    # Host functions keep the callbacks of the moment they are defined: patch first (idempotent).
    patches.apply()
    report = LinkReport()
    linker = Linker(engine)
    linker.allow_shadowing = True
    linker.add_wasip2()
    imports = component.type.imports(engine)
    with linker.root() as root:
        for import_name, extern in imports.items():
            ty = extern.ty
            if isinstance(ty, FuncType):
                if is_async(ty):
                    report.async_funcs.append(import_name)
                    continue
                root.add_func(import_name, _trap(import_name, ""))
                report.unsupported.append(import_name)
                continue
            if not isinstance(ty, ComponentInstanceType):
                report.unsupported.append(import_name)
                continue
            interface, version = split_import_name(import_name)
            cap = next((c for c in capabilities if c.provides(interface)), None)
            if cap is None and interface in WASIP2_KEPT:
                report.wasip2.append(import_name)
                continue
            exports = ty.exports(engine)
            guard = cap is not None and (cap.blocking or not cap.inline_safe)
            if cap is not None:
                impl = cap.implement(interface, version)
                report.provided[import_name] = cap.name
                if cap not in report.capabilities:
                    report.capabilities.append(cap)
            else:
                impl = InterfaceImpl(
                    resources={
                        name: (resource_type_id(interface, name), lambda rep: None)
                        for name in _owned_resources(exports)
                    }
                )
                if any(isinstance(item.ty, FuncType) for item in exports.values()):
                    report.unsupported.append(import_name)  # (a types-only interface needs nothing)
            with root.add_instance(import_name) as inst:
                for name, item in exports.items():
                    item_ty = item.ty
                    if isinstance(item_ty, FuncType) and is_async(item_ty):
                        report.async_funcs.append(f"{import_name}#{name}")
                    elif isinstance(item_ty, FuncType):
                        func = impl.funcs.get(name)
                        if func is None:
                            func = _trap(import_name, name)
                        elif guard:
                            func = _worker_thread_only(func, f"{import_name}#{name}")
                        inst.add_func(name, func)
                    elif isinstance(item_ty, ResourceType) and name in impl.resources:
                        type_id, drop = impl.resources[name]
                        inst.add_resource(name, ResourceType.host(type_id), _dtor(drop))
    return linker, report


def _dtor(drop: Any) -> Any:
    def dtor(store: Any, rep: int) -> None:
        drop(rep)

    return dtor
