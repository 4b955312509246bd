"""How host interfaces and executors plug into the runtime (the contract for runtime/capabilities/
and runtime/http/executors/).

Linking
-------
The runtime links each component by the component's OWN import names: for every imported
instance, e.g. ``fermyon:spin/key-value@2.0.0``, it splits the name into the versionless
interface (``fermyon:spin/key-value``) and the version (``2.0.0``, or ``None``), asks the
registered capabilities in order which one ``provides`` that interface, and calls its
``implement(interface, version)``. The returned :class:`InterfaceImpl` names, per import:

* ``resources``: resources this interface OWNS (not ``use``d aliases such as ``headers``),
  each with a host type id from :func:`resource_type_id` and a destructor ``drop(rep)`` run
  when the guest drops its handle (it runs on the guest's thread; use ``context.current()``);
* ``funcs``: host functions by their component-model name (``"get"``,
  ``"[method]store.get"``, ``"[constructor]fields"``, ``"[static]store.open"``). A function
  is called by wasmtime-py as ``fn(store, *args)`` with values in wasmtime-py's conventions
  (records as objects with attributes, ``list<u8>`` as bytes, variants as ``Variant`` when
  their cases' Python types overlap; see runtime/core/values.py for helpers). Borrowed and owned
  resources arrive as ``ResourceAny``: turn every one into its rep with
  ``values.rep(store, res)`` (a borrow left unconverted traps the call).

Any function the component imports that the impl does not define, and any interface no
capability provides, is defined as a trap by the runtime (the guest links; calling it traps
with "unsupported import NAME"). Interfaces claimed by nobody stay with wasmtime's own WASI
(``add_wasip2``) when they are ones it serves faster (environment, exit, wall clock, random,
terminal, sockets/network).

Per-request state
-----------------
A fresh Store and instance serve each request. Host functions find their request with
``runtime.core.context.current()``: a :class:`~runtime.core.context.RequestContext` holding the app, the
component, the AppSettings (variables, state_dir, limits), the deadline, a logger, the resource
table (``ctx.table.push(obj) -> rep``, ``get(rep, Type)``, ``take``), the request being
served (``ctx.request``, ``ctx.response``) and typed per-request slots that each capability
declares (``KEY = StateKey[T]("name")``, ``ctx.get(KEY)``, ``ctx.set(KEY, value)``). Register ``ctx.cleanups.append(fn)`` for work that must end with the request.
Host functions that wait must give up at ``ctx.deadline`` (raise ``GuestTrap`` or return the
interface's timeout error).

Load time
---------
``prepare(app, component, settings)`` runs once per component when the app loads, only for
capabilities the component imports; raise ``runtime.errors.AppLoadError`` to refuse the app
(e.g. an undeclared variable, a key-value label with no store). It may return an object kept
in ``RequestContext.prepared[capability.name]`` for every request (shared, not copied). An optional
``prepare_app(app, settings)`` method runs once per app load, for every registered capability,
whether or not a component imports it (app-wide checks such as required variables).

Execution path
--------------
Set ``blocking = True`` on a capability whose functions may wait (outbound HTTP, databases,
sleeps), and ``inline_safe = True`` on one whose functions only do in-memory work. A component
may run inline on the event loop once its runs prove cheap, whatever it imports; the functions of
a capability that blocks or is not inline-safe refuse to run inline (NeedsWorkerThread, raised
before they start), and the component then runs on worker threads for good
(runtime/core/linking.py, runtime/http/scheduling.py).

Executors
---------
wasi:http/incoming-handler is the built-in executor. Another executor (fermyon:spin/
inbound-http, WAGI, Spin 1.x core modules) is an :class:`ExecutorProvider` whose
``select(info, executor_config)`` returns an :class:`Executor` when it claims the component:
``info`` tells the wasm kind ("component" | "module"), the export names and the import names;
``executor_config`` is the trigger's ``executor`` (None, ``{"type": "http"}``,
``{"type": "wagi", ...}``). Providers are asked before the built-in one. The executor's
``run(guest, request, response)`` is synchronous and runs on a worker thread (or inline):

* ``guest.new_store(ctx)`` makes a Store with the app's limits, epoch deadline and WASI env;
  ``guest.instantiate(store)`` instantiates the component (``guest.module`` / ``guest.linker``
  for a core module: the executor instantiates it itself); ``guest.fresh_instance(ctx, timeout)``
  does both, handing over an instance made ahead when there is one (``makes_spares``);
* ``request`` is a :class:`runtime.core.guest_io.GuestRequest` (method, scheme, authority,
  path_with_query, headers incl. spin-* as (str, bytes), client_addr, route match, and
  ``body``: a blocking reader);
* ``response`` is a :class:`runtime.core.guest_io.ResponseSink`: ``start(status, headers)`` once,
  then ``write(bytes)`` (blocks for back-pressure), then ``finish()``. Raise an exception to
  fail the request (500 if nothing was started, truncated body otherwise).

Registration
------------
runtime/runtime.py, the composition root, lists the capabilities and executor providers
(``default_capabilities()``, ``default_executors()``); tests can pass their own lists to
``Runtime``. Behaviour is declared by attributes (``blocking``, ``inline_safe``), never inferred
from where a class lives.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from registry.loaded import LoadedApp, LoadedComponent
from runtime.types import AppSettings

if TYPE_CHECKING:
    from runtime.core.guest import PreparedGuest
    from runtime.core.guest_io import GuestRequest, ResponseSink

HostFunc = Callable[..., Any]
Drop = Callable[[int], None]


@dataclass
class InterfaceImpl:
    """What one capability defines for one imported interface instance."""

    # Mappings (not dicts) so a literal of more specific callables type-checks.
    resources: Mapping[str, tuple[int, Drop]] = field(default_factory=dict)
    funcs: Mapping[str, HostFunc] = field(default_factory=dict)


@runtime_checkable
class Capability(Protocol):
    name: str
    # Its functions may wait (network, sleeps): they never run inline on the event loop.
    blocking: bool
    # Its functions do only in-memory work: they may run inline on the event loop. Functions of
    # capabilities that are not refuse to (runtime.core.linking), sending the component to
    # worker threads.
    inline_safe: bool

    def provides(self, interface: str) -> bool:
        """True if this capability implements the versionless interface, e.g. "wasi:http/types"."""
        ...

    def implement(self, interface: str, version: str | None) -> InterfaceImpl: ...

    def prepare(self, app: LoadedApp, component: LoadedComponent, settings: AppSettings) -> Any:
        """Load-time checks for a component importing this capability; may return prepared state."""
        ...


class BaseCapability:
    """Convenience base: a fixed set of interfaces, no load-time work, non-blocking, and not
    inline-safe unless a subclass says so."""

    name = "base"
    blocking = False
    inline_safe = False
    interfaces: frozenset[str] = frozenset()

    def provides(self, interface: str) -> bool:
        return interface in self.interfaces

    def implement(self, interface: str, version: str | None) -> InterfaceImpl:
        raise NotImplementedError

    def prepare(self, app: LoadedApp, component: LoadedComponent, settings: AppSettings) -> Any:
        return None


@dataclass(frozen=True)
class ComponentInfo:
    """Facts about a wasm binary that executor selection needs."""

    kind: str  # "component" | "module"
    exports: frozenset[str]  # component export names, or core export names for a module
    imports: frozenset[str]  # instance import names (component) or "module/name" (core module)

    def exports_interface(self, interface: str) -> str | None:
        """The full export name of `interface` ("wasi:http/incoming-handler") at any version."""
        for name in sorted(self.exports):
            if name == interface or name.startswith(interface + "@"):
                return name
        return None


class Executor(Protocol):
    name: str
    blocking: bool  # True if run() may wait on anything but the request body (forces a thread)
    # True if run() takes instances from guest.reuse when the app opts in to reuse
    # (max_instance_reuse_count > 1; runtime/core/reuse.py); others get a fresh one each time.
    reuses_instances: bool
    # True if run() takes its fresh instances from guest.fresh_instance, which may hand it one made
    # ahead (runtime/core/spares.py); the executor then gets guest.spares when reuse is off.
    makes_spares: bool

    def run(self, guest: PreparedGuest, request: GuestRequest, response: ResponseSink) -> None: ...


class ExecutorProvider(Protocol):
    def select(self, info: ComponentInfo, executor_config: Mapping[str, Any] | None) -> Executor | None: ...


# Host resource type ids are global to the process (wasmtime compares them by value), so one
# registry hands them out: the same (interface, resource) always gets the same id, whatever
# version of the interface a component imports.
_type_ids: dict[str, int] = {}
_type_ids_lock = threading.Lock()


def resource_type_id(interface: str, resource: str) -> int:
    """Stable host resource type id for `resource` of the versionless `interface`."""
    key = f"{interface}#{resource}"
    with _type_ids_lock:
        tid = _type_ids.get(key)
        if tid is None:
            tid = _type_ids[key] = len(_type_ids) + 1
        return tid


def split_import_name(name: str) -> tuple[str, str | None]:
    """ "wasi:http/types@0.2.3" -> ("wasi:http/types", "0.2.3")."""
    interface, _, version = name.partition("@")
    return interface, (version or None)
