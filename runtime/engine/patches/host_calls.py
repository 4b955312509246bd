"""The C callbacks behind every host function, with the pending exception kept per thread.

Stock wasmtime-py keeps the Python exception a host function raised in a module global, so a
failing request could raise another request's exception; these replacements keep it per thread
(host functions run on the thread that entered wasm). Component host functions convert with
signatures compiled once per definition and cached by its slab handle.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterator
from typing import Any

import wasmtime
from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime import _func as _core_func
from wasmtime.component import (
    Func,
    FuncType,
    _linker,
)

from runtime.engine.patches.conversions import Signature, signature


class _ThreadLocalSet:
    """Stands in for `_types.case_test_cache`: the set operations stock `_lower` uses, per thread."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _set(self) -> set[type]:
        s: set[type] | None = getattr(self._local, "s", None)
        if s is None:
            s = self._local.s = set()
        return s

    def clear(self) -> None:
        self._set().clear()

    def add(self, item: type) -> None:
        self._set().add(item)

    def __iter__(self) -> Iterator[type]:
        return iter(self._set())

    def __len__(self) -> int:
        return len(self._set())

    def __contains__(self, item: object) -> bool:
        return item in self._set()


_pending = threading.local()  # .exc: the Python exception a host function raised on this thread


def _catch_exceptions(store_raw: Any, func: Callable[..., None], *args: Any) -> Any:
    """Stock `catch_exceptions` with the pending Python exception kept per thread.

    Extra `args` are passed to `func(store, *args)`, so the per-host-call path needs no closure.
    """
    store = wasmtime.StoreContext(store_raw)
    error: WasmtimeError | None = None
    try:
        func(store, *args)
    except WasmtimeError as exc:
        error = exc
    except Exception as exc:
        _pending.exc = exc
        error = WasmtimeError("python exception")
    finally:
        store._invalidate()
    if error is not None:
        return ctypes.cast(error._consume(), ctypes.c_void_p).value
    return 0


def raise_pending_host_error() -> None:
    """Raise (and clear) the exception a host function raised on this thread, if one is pending:
    for wasmtime calls that report a failed host call as a bare "python exception" and do not look
    for it themselves (``Linker.instantiate`` running start functions). Left pending, it would be
    raised by this thread's next failing call, in another request."""
    _maybe_raise_last_exn()


def _maybe_raise_last_exn() -> None:
    exc = getattr(_pending, "exc", None)
    if exc is None:
        return
    _pending.exc = None
    raise exc


# Core-module host functions (``wasmtime.Func`` / ``Linker.define_func``, used for Spin 1.x modules)
# have the same global in ``wasmtime/_func.py``; its trampoline writes the global directly, so the
# trampoline itself is replaced by one with the same conversions and a per-thread pending exception.
_pending_core = threading.local()


@ffi.wasmtime_func_callback_t
def _core_trampoline(idx, caller_ptr, params, nparams, results, nresults):  # type: ignore[no-untyped-def]
    caller = _core_func.Caller(caller_ptr)
    try:
        func, result_types, access_caller = _core_func.FUNCTIONS.get(idx or 0)
        args: list[Any] = [caller] if access_caller else []
        args.extend(wasmtime.Val._from_raw(caller, params[i], owned=False).value for i in range(nparams))
        out = func(*args)
        if nresults == 0:
            if out is not None:
                raise WasmtimeError("callback produced results when it shouldn't")
        elif nresults == 1:
            results[0] = wasmtime.Val._convert_to_raw(caller, result_types[0], out)
        else:
            if len(out) != nresults:
                raise WasmtimeError("callback produced wrong number of results")
            for i, value in enumerate(out):
                results[i] = wasmtime.Val._convert_to_raw(caller, result_types[i], value)
        return 0
    except BaseException as exc:
        _pending_core.exc = exc
        trap = wasmtime.Trap("python exception")._consume()
        return ctypes.cast(trap, ctypes.c_void_p).value
    finally:
        caller._invalidate()


def _core_maybe_raise_last_exn() -> None:
    exc = getattr(_pending_core, "exc", None)
    if exc is None:
        return
    _pending_core.exc = None
    raise exc


_host_signatures: dict[int, Signature] = {}  # FUNCTIONS slab handle -> compiled signature


def _host_call(idx: int, store: Any, ty_raw: Any, args: Any, nargs: int, results: Any, nresults: int) -> None:
    sig = _host_signatures.get(idx)
    if sig is None or nargs != len(sig.params) or nresults != (sig.result is not None):
        # First call (or, defensively, a different shape than cached): the type is borrowed from
        # wasmtime for this call only, so compile it into pure Python now. A definition is imported
        # under one name, hence with one type; kind checks in every lift catch anything else.
        sig = signature(FuncType._from_ptr(ty_raw, owner=store))
        _host_signatures[idx] = sig
    params = sig.params
    func = _linker.FUNCTIONS.get(idx)
    value = func(store, *[params[i].lift(args[i]) for i in range(nargs)])
    if sig.result is None:
        if value is not None:
            raise TypeError("host function returned a value but its type has no result")
    else:
        sig.result.lower(store, value, results[0])


@ffi.wasmtime_component_func_callback_t
def _func_impl(idx, context, ty_raw, args, nargs, results, nresults):  # type: ignore[no-untyped-def]
    # Arguments go through _catch_exceptions rather than a closure: this runs for every host
    # call, and building a closure cost a measurable share of a small guest's request.
    return _catch_exceptions(context, _host_call_in_store, idx or 0, ty_raw, args, nargs, results, nresults)


def _host_call_in_store(store: Any, idx: int, *rest: Any) -> None:
    _host_call(idx, store, *rest)


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def _func_finalize(idx):  # type: ignore[no-untyped-def]
    key = idx or 0
    # Module globals may already be None during interpreter shutdown.
    if _host_signatures is not None:
        _host_signatures.pop(key, None)
    functions = getattr(_linker, "FUNCTIONS", None)
    if functions is not None:
        functions.deallocate(key)


def _func_call(self: Func, store: Any, *params: Any) -> Any:
    return signature(self.type(store)).call(self, store, *params)
