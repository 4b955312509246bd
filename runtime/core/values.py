"""Small helpers for host functions written against wasmtime-py's value conventions.

wasmtime-py represents option/result/variant values either bare or as `Variant(tag, payload)`,
depending on whether the Python types of the cases overlap (runtime.engine.patches keeps that rule).
The helpers here name the shapes the wasi interfaces need, so host code reads as the WIT does.
"""

from __future__ import annotations

from ctypes import POINTER, byref
from typing import Any

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime.component import ResourceAny, ResourceHost, Variant

_HostPtr = POINTER(ffi.wasmtime_component_resource_host_t)


def rep(store: Any, res: ResourceAny) -> int:
    """The host rep behind a borrowed or owned handle (converting releases the borrow).

    What ``res.to_host(store).rep`` does, without the intermediate ResourceHost object: every
    host call on a resource goes through here, and the wrapper's allocation and finalizer were a
    measurable share of a small request's host-call cost."""
    host = _HostPtr()
    error = ffi.wasmtime_component_resource_any_to_host(store._context(), res.ptr(), byref(host))
    if error:
        raise WasmtimeError._from_ptr(error)
    try:
        return int(ffi.wasmtime_component_resource_host_rep(host))
    finally:
        ffi.wasmtime_component_resource_host_delete(host)


def own(rep_: int, type_id: int) -> ResourceHost:
    """ResourceHost.own(rep_, type_id), without its pointer-type check (hot: most host calls)."""
    host: ResourceHost = ResourceHost.__new__(ResourceHost)
    host._set_ptr(ffi.wasmtime_component_resource_host_new(True, rep_, type_id))
    return host


def tag(name: str, payload: Any = None) -> Variant:
    return Variant(name, payload)


def variant_tag(value: Any) -> str:
    return value.tag if isinstance(value, Variant) else str(value)


def record(fields: dict[str, Any]) -> Any:
    """A record value; field names as in WIT (hyphenated), which wasmtime-py uses as attributes."""
    from wasmtime.component import Record

    out = Record()
    for name, value in fields.items():
        setattr(out, name, value)
    return out
