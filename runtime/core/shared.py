"""What the apps running one compiled component share: its exports/imports, its Linker, and the
proof that it instantiates.

A host for many small apps runs the same component (same digest: the precompiled cache hands out
one Component object per digest) for many apps. Linking costs milliseconds and tens of kilobytes
per Linker, so building one per app made the per-app cost of ten thousand apps minutes and a
gigabyte. A Linker is app-independent: capabilities implement an interface without knowing the
app (`Capability.implement(interface, version)`), and every host function finds the app, its
settings and its prepared state through the RequestContext bound for the run
(runtime/core/context.py), which each app's own PreparedGuest makes. So one Linker per compiled
component and capability list serves every app running it.

Entries are weakly keyed by the compiled component: when the last app using it is released (its
versions retired, the precompiled cache's own weak entry gone), the entry and its Linker go too.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wasmtime import Engine, Module
from wasmtime.component import Component, Linker

from runtime.core.contract import Capability, ComponentInfo
from runtime.core.guest import component_info
from runtime.core.linking import LinkReport, build_linker
from runtime.core.reuse import one_request_per_instance


@dataclass(eq=False)
class SharedCode:
    """One compiled component (or core module) and what every app running it can share."""

    info: ComponentInfo
    linker: Linker | None = None  # components only (core modules are linked by their executor)
    link_report: LinkReport | None = None
    # (memory limit, timeout) of the trial instantiations that succeeded: one with limits at least
    # as generous instantiates too, so it is not tried again for every app.
    _instantiated: list[tuple[int, float]] = field(default_factory=list)
    _reuse_checked: bool = False
    _reuse_refusal: str | None = None  # why instances cannot be reused (once checked)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def why_not_reusable(self, wasm_path: Path) -> str | None:
        """Why instances of this code cannot serve a second request (None: they can). The .wasm
        is read once per compiled component, by the first app that asks for reuse, not per app."""
        with self._lock:
            if not self._reuse_checked:
                self._reuse_refusal = one_request_per_instance(wasm_path.read_bytes())
                self._reuse_checked = True
            return self._reuse_refusal

    def instantiated_within(self, memory_bytes: int, timeout_s: float) -> bool:
        with self._lock:
            return any(memory_bytes >= m and timeout_s >= t for m, t in self._instantiated)

    def record_instantiated(self, memory_bytes: int, timeout_s: float) -> None:
        with self._lock:
            self._instantiated.append((memory_bytes, timeout_s))
            del self._instantiated[:-8]  # (a handful of distinct limits is all there ever is)


class SharedCodeCache:
    """SharedCode per compiled component, for one Engine and one capability list."""

    def __init__(self, engine: Engine, capabilities: Sequence[Capability]) -> None:
        self.engine = engine
        self.capabilities = list(capabilities)
        self._entries: weakref.WeakKeyDictionary[Component | Module, SharedCode] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()  # one link at a time: a second app of the same digest waits for it
        self.stats = {"built": 0, "shared": 0}

    def get(self, compiled: Component | Module) -> SharedCode:
        """The shared part for `compiled` (built on first use; blocking: call off the loop)."""
        with self._lock:
            shared = self._entries.get(compiled)
            if shared is not None:
                self.stats["shared"] += 1
                return shared
            shared = SharedCode(info=component_info(self.engine, compiled))
            if isinstance(compiled, Component):
                shared.linker, shared.link_report = build_linker(self.engine, compiled, self.capabilities)
            self._entries[compiled] = shared
            self.stats["built"] += 1
            return shared

    def __len__(self) -> int:
        return len(self._entries)
