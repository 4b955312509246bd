"""Contained fixes for wasmtime-py 50.0.1's component-model value conversion.

wasmtime-py 50.0.1 (``wasmtime/component/``) has three measured problems that a multi-app HTTP host
cannot live with (measured; see docs/explanation/runtime-design.md):

1. Conversions are not thread-safe. ``_types.VariantLikeType._lower`` matches an untagged
   option/result/variant payload against ``_types.case_test_cache``, a module-global set that every
   thread clears and refills; two threads lowering at once pick the wrong case. ``_enter``'s
   ``LAST_EXCEPTION`` (the Python exception raised inside a host function, re-raised by the thread
   that called into wasm) is a module global too, so a failing request can raise another request's
   exception.
2. Every host call re-reads its function type through the C API (``FuncType.params`` builds fresh
   ``ValType`` objects, records re-read their fields on every value, variants recompute whether they
   are tagged on every value): ~0.1-0.2 ms per call.
3. ``list<u8>`` is converted one element at a time in Python: ~1.5 s per MiB.

:func:`apply` fixes them at the narrowest points, once, process-wide:

- ``_types.case_test_cache`` becomes a per-thread set (keeps the stock slow path correct);
- ``_enter.catch_exceptions`` / ``_enter.maybe_raise_last_exn`` (and ``_linker``'s imported
  reference) keep the pending exception per thread (host functions run on the thread that entered
  wasm, so the thread that raised it is the thread that re-raises it);
- ``_linker.func_impl`` (the C callback behind every ``LinkerInstance.add_func``) converts with
  converters compiled once per defined function and cached by its slab handle; ``func_finalize``
  evicts the cache entry when wasmtime frees the definition;
- ``Func.__call__`` converts with compiled converters (it still reads the type per call; use
  :func:`signature_of` once and :meth:`Signature.call` per call to avoid that too);
- core-module host functions (``wasmtime/_func.py``, used for Spin 1.x modules) have the same
  global ``LAST_EXCEPTION``, written inside the ``trampoline`` callback itself: ``trampoline`` is
  replaced (same conversions, pending exception per thread), in ``_func`` and ``_linker``, and
  ``_func.maybe_raise_last_exn`` reads the per-thread value.

The compiled converters (:func:`compile_valtype`) produce and accept exactly the Python values the
stock ones do (``bytes`` for ``list<u8>``, ``list``, ``Record``, ``tuple``, ``Variant`` or a bare
payload for option/result/variant by the same tagging rule, ``str`` for enums, ``set`` for flags,
``ResourceAny`` for own/borrow). ``list<u8>`` moves with two strided memory copies instead of a Python
loop; lowering also accepts ``bytearray`` and ``memoryview``. One addition: :class:`Case` names the
case of an option/result/variant explicitly, for values the stock tagging rule cannot express.

What stays slow is wasmtime's own C API: a ``list<u8>`` crosses it as one 32-byte value per byte
(``Vec<Val>`` and the C value array, each built and walked in Rust), tens of ms per MiB per
direction; :func:`tune_allocator` (opt-in) removes the page-fault share of that. Python never sees
a component's memory; a ``string`` crosses as one buffer, which is how stream bodies avoid this
path altogether (runtime/engine/byte_bridge.py).

Only the exact wasmtime-py versions in :data:`PATCHED_VERSIONS` are patched: on any other version
:func:`apply` logs a warning and changes nothing, and :meth:`Signature.call` falls back to the stock
``Func.__call__``. Host functions added *before* :func:`apply` keep the stock callback (which is
kept alive: wasmtime holds raw pointers to it), so call it at import time (``the Runtime constructor``
does).

Ownership rules mirror the stock converters: lifting consumes the C value (strings and vectors are
freed through their ``*_delete`` functions, nested values are reset to ``bool`` so the parent's drop
does not free them twice); lowered values are handed to wasmtime, which frees them.

Modules: ``conversions`` (converters, signatures), ``host_calls`` (the replaced C callbacks),
``memory`` (core-module memory, allocator tuning), ``install`` (:func:`apply`), ``state``.
"""

from __future__ import annotations

from runtime.engine.patches.conversions import (
    Case,
    Converter,
    Signature,
    compile_valtype,
    signature,
    signature_of,
)
from runtime.engine.patches.host_calls import raise_pending_host_error
from runtime.engine.patches.install import apply, is_applied
from runtime.engine.patches.memory import read_memory, tune_allocator, write_memory
from runtime.engine.patches.state import PATCHED_VERSIONS, wasmtime_version

__all__ = [
    "PATCHED_VERSIONS",
    "Case",
    "Converter",
    "Signature",
    "apply",
    "compile_valtype",
    "is_applied",
    "raise_pending_host_error",
    "read_memory",
    "signature",
    "signature_of",
    "tune_allocator",
    "wasmtime_version",
    "write_memory",
]
