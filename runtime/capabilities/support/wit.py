"""Value helpers for the Spin host bindings, on top of runtime/core/values.py (wasmtime-py conventions).

wasmtime-py represents a result/option/variant bare when its cases' Python classes do not
overlap, and as `Variant(tag, payload)` when they do. A result whose `ok` payload is an option
(`result<option<list<u8>>, error>`) is bare, and its `ok` case accepts any Python object, so a
bare error value would be taken for `ok`. `err(...)` / `ok(...)` therefore return an explicit
case (`runtime.engine.patches.Case`) that the converters honour whatever the tagging.
"""

from __future__ import annotations

from typing import Any

from wasmtime.component import Record, Variant

from runtime.engine.patches import Case


def record(**fields: Any) -> Record:
    """A WIT record value. wasmtime-py reads fields by their WIT (kebab-case) names; pass them
    with `_` for `-` (`last_insert_rowid=` for `last-insert-rowid`)."""
    rec = Record()
    for name, value in fields.items():
        setattr(rec, name.replace("_", "-"), value)
    return rec


def case(tag: str, payload: Any = None) -> Variant:
    """A tagged variant case (for variants whose cases overlap, e.g. all-string payloads)."""
    return Variant(tag, payload)


def ok(payload: Any = None) -> Any:
    return Case("ok", payload)


def err(payload: Any) -> Any:
    return Case("err", payload)
