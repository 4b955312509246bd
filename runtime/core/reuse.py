"""Instances kept for the next request of the same component (opt-in, sequential reuse).

Spin 4 reuses instances of wasi:http 0.3 handlers; this is the sequential form for 0.2 handlers,
set per app by `max_instance_reuse_count` and `idle_instance_timeout` (AppSettings). An instance
serves up to N requests one after another, never two at once; it is dropped after N, once idle
for the timeout, and after any run that did not end cleanly (a trap, a timeout, no response). The
pool belongs to one PreparedGuest, that is to one component of one loaded app version: instances
are never shared between apps or versions, and a swapped-out version's are closed with it.

Reuse means the guest's globals (module state, caches, a language runtime's heap) carry over from
one request to the next of the same instance; the host's per-request state (the resource table,
request and response) does not.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from wasmtime import Store

from runtime.core.sweeper import SWEEPER
from runtime.engine.component_binary import LayoutError, core_module_exports, producers


@dataclass(eq=False)
class KeptInstance:
    store: Store
    instance: Any  # wasmtime.component.Instance
    served: int = 0  # requests this instance has answered
    idle_since: float = 0.0


class InstanceReuse:
    """The idle instances of one component, most recently used first."""

    def __init__(self, max_count: int, idle_timeout_s: float) -> None:
        if max_count < 2:
            raise ValueError("reuse needs max_count >= 2 (1 is a fresh instance per request)")
        self.max_count = max_count
        self.idle_timeout_s = idle_timeout_s
        self._lock = threading.Lock()
        self._idle: list[KeptInstance] = []
        self._closed = False
        SWEEPER.watch(self)

    def take(self) -> KeptInstance | None:
        """An idle instance to serve the next request, or None (make a fresh one)."""
        self.sweep()
        with self._lock:
            return self._idle.pop() if self._idle else None

    def give_back(self, kept: KeptInstance) -> None:
        """After a run that ended cleanly: keep the instance, or close it when it has served its
        count (or the pool is closed)."""
        kept.served += 1
        if kept.served >= self.max_count:
            kept.store.close()
            return
        kept.idle_since = time.monotonic()
        with self._lock:
            if not self._closed:
                self._idle.append(kept)
                return
        kept.store.close()

    def sweep(self) -> None:
        """Close the instances idle for longer than the timeout (their memory goes back)."""
        cutoff = time.monotonic() - self.idle_timeout_s
        with self._lock:
            expired = [k for k in self._idle if k.idle_since <= cutoff]
            if expired:
                self._idle = [k for k in self._idle if k.idle_since > cutoff]
        for kept in expired:
            kept.store.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for kept in idle:
            kept.store.close()

    def __len__(self) -> int:
        return len(self._idle)


def one_request_per_instance(wasm: bytes) -> str | None:
    """Why instances of this component cannot serve a second request, or None.

    Components built by ComponentizeJS (the Spin JS SDK, jco) run StarlingMonkey. When the JS
    code answers through `addEventListener("fetch")`, StarlingMonkey's own FetchEvent dispatch is
    the wasi:http handler, and its state is not cleared after a request: the second request on an
    instance fails with `FetchEvent#respondWith can't be called twice` (StarlingMonkey issue #247).
    Reusing those would turn every other request into an error, so they always get a fresh
    instance. A JS module that exports `incomingHandler` itself (written against wasi:http
    directly) is left without the FetchEvent dispatch and serves any number of requests. The two
    are told apart by the handler's post-return function: ComponentizeJS generates one for an
    export the JS code implements, and StarlingMonkey's built-in handler has none."""
    try:
        tools = {name for name, _ in producers(wasm).get("processed-by", [])}
    except LayoutError:
        return None
    if "ComponentizeJS" not in tools:
        return None
    try:
        exported = core_module_exports(wasm)
    except LayoutError:  # (unreadable: assume the FetchEvent form, the safe side)
        exported = set()
    if any(name.startswith("cabi_post_wasi:http/incoming-handler@") for name in exported):
        return None
    return ("it was built by ComponentizeJS with a FetchEvent handler (StarlingMonkey answers one "
            "request per instance; export incomingHandler instead to allow reuse)")
