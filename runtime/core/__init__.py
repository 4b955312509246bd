"""The runtime's core: the contract its plug-ins implement, and what every request needs.

It knows no concrete capability or executor (as Spin's ``factors`` crate knows no factor): those
import the core, and runtime/runtime.py composes them.

- ``contract.py``: Capability, InterfaceImpl, Executor, ExecutorProvider, ComponentInfo, resource
  type ids (its docstring is the guide to writing a capability or an executor).
- ``context.py``: RequestContext (the request being served, typed per-capability slots, the
  resource table, the deadline), found by host functions through ``context.current()``.
- ``linking.py``: a component's Linker, built from the capabilities by its own import names.
- ``guest.py``: PreparedGuest, a compiled and linked component; a fresh Store per request.
- ``guest_io.py``: request bodies in and responses out between the event loop and guest threads.
- ``values.py``: helpers for wasmtime-py's value conventions.
"""
