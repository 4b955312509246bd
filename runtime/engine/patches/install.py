"""apply(): install the wasmtime-py fixes once, process-wide (only on the tested versions)."""

from __future__ import annotations

import logging

from wasmtime import _func as _core_func
from wasmtime import _linker as _core_linker
from wasmtime.component import (
    _enter,
    _linker,
    _types,
)
from wasmtime.component import _func as _component_func

from runtime.engine.patches.host_calls import (
    _catch_exceptions,
    _core_maybe_raise_last_exn,
    _core_trampoline,
    _func_call,
    _func_finalize,
    _func_impl,
    _maybe_raise_last_exn,
    _ThreadLocalSet,
)
from runtime.engine.patches.state import PATCHED_VERSIONS, state, wasmtime_version

log = logging.getLogger(__name__)

_REQUIRED = (
    (_types, "case_test_cache"),
    (_types, "VariantLikeType"),
    (_enter, "catch_exceptions"),
    (_enter, "maybe_raise_last_exn"),
    (_enter, "enter_wasm"),
    (_linker, "func_impl"),
    (_linker, "func_finalize"),
    (_linker, "catch_exceptions"),
    (_linker, "FUNCTIONS"),
    (_component_func.Func, "__call__"),
    (_core_func, "trampoline"),
    (_core_func, "maybe_raise_last_exn"),
    (_core_func, "Caller"),
    (_core_func, "FUNCTIONS"),
    (_core_linker, "trampoline"),
)


def is_applied() -> bool:
    return state.applied


def apply() -> bool:
    """Install the fixes (idempotent, thread-safe). Returns whether they are active.

    On a wasmtime-py version not in :data:`PATCHED_VERSIONS`, or if an expected internal is missing,
    logs a warning and leaves wasmtime untouched.
    """
    with state.lock:
        if state.applied:
            return True
        version = wasmtime_version()
        if version not in PATCHED_VERSIONS:
            log.warning(
                "runtime.engine.patches: wasmtime-py %s is not one of %s; not patching (conversions stay "
                "stock: slower list<u8>, not thread-safe)",
                version,
                sorted(PATCHED_VERSIONS),
            )
            return False
        missing = [f"{mod.__name__}.{name}" for mod, name in _REQUIRED if not hasattr(mod, name)]
        if missing:
            log.warning(
                "runtime.engine.patches: wasmtime-py internals missing (%s); not patching", ", ".join(missing)
            )
            return False
        # wasmtime holds raw pointers to the replaced ctypes callbacks for every function defined
        # before now: keep the originals alive, or those calls and finalizers would jump into freed
        # thunks.
        state.originals = [getattr(mod, name) for mod, name in _REQUIRED if not isinstance(mod, type)] + [
            _component_func.Func.__call__
        ]
        _types.case_test_cache = _ThreadLocalSet()  # type: ignore[assignment]
        _enter.catch_exceptions = _catch_exceptions
        _enter.maybe_raise_last_exn = _maybe_raise_last_exn
        _linker.catch_exceptions = _catch_exceptions
        _linker.func_impl = _func_impl
        _linker.func_finalize = _func_finalize
        _component_func.Func.__call__ = _func_call  # type: ignore[method-assign]
        _core_func.trampoline = _core_trampoline
        _core_func.maybe_raise_last_exn = _core_maybe_raise_last_exn
        _core_linker.trampoline = _core_trampoline
        state.applied = True
        log.debug("runtime.engine.patches: patched wasmtime-py %s", version)
        return True
