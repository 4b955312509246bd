"""Small helpers for host functions written against wasmtime-py's value conventions.

wasmtime-py represents option/result/variant values either bare or as `Variant(tag, payload)`,
depending on whether the Python types of the cases overlap (runtime.compat keeps that rule).
The helpers here name the shapes the wasi interfaces need, so host code reads as the WIT does.
"""

from __future__ import annotations

from typing import Any

from wasmtime.component import ResourceAny, ResourceHost, Variant


def rep(store: Any, res: ResourceAny) -> int:
    """The host rep behind a borrowed or owned handle (converting releases the borrow)."""
    return int(res.to_host(store).rep)


def own(rep_: int, type_id: int) -> ResourceHost:
    return ResourceHost.own(rep_, type_id)


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
