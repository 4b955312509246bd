"""Contained fixes for wasmtime-py 50.0.1's component-model value conversion.

wasmtime-py 50.0.1 (``wasmtime/component/``) has three measured problems that a multi-app HTTP host
cannot live with (see /work/shared/wasmtime-py-notes.md):

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
path altogether (runtime/byte_bridge.py).

Only the exact wasmtime-py versions in :data:`PATCHED_VERSIONS` are patched: on any other version
:func:`apply` logs a warning and changes nothing, and :meth:`Signature.call` falls back to the stock
``Func.__call__``. Host functions added *before* :func:`apply` keep the stock callback (which is
kept alive: wasmtime holds raw pointers to it), so call it at import time (``runtime/__init__``
does).

Ownership rules mirror the stock converters: lifting consumes the C value (strings and vectors are
freed through their ``*_delete`` functions, nested values are reset to ``bool`` so the parent's drop
does not free them twice); lowered values are handed to wasmtime, which frees them.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import logging
import threading
from collections.abc import Callable, Iterator
from ctypes import byref
from dataclasses import dataclass
from typing import Any

import wasmtime
from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime import _func as _core_func
from wasmtime import _linker as _core_linker
from wasmtime.component import (
    F32,
    F64,
    S8,
    S16,
    S32,
    S64,
    U8,
    U16,
    U32,
    U64,
    Bool,
    BorrowType,
    Char,
    EnumType,
    FlagsType,
    Func,
    FuncType,
    ListType,
    OptionType,
    OwnType,
    Record,
    RecordType,
    ResourceAny,
    ResourceHost,
    ResultType,
    String,
    TupleType,
    ValType,
    Variant,
    VariantType,
    _enter,
    _linker,
    _types,
)
from wasmtime.component import _func as _component_func

log = logging.getLogger(__name__)

#: wasmtime-py versions whose internals this module was written against and tested with.
PATCHED_VERSIONS = frozenset({"50.0.1"})

CVal = Any  # a ffi.wasmtime_component_val_t (a view into C memory)
Lift = Callable[[CVal], Any]
Lower = Callable[[Any, Any, CVal], None]  # (store, python value, destination C value)

_VAL_SIZE = ctypes.sizeof(ffi.wasmtime_component_val_t)
_PAYLOAD_OFFSET = ffi.wasmtime_component_val_t.of.offset  # where u8/bool/... live in a val

K_BOOL = ffi.WASMTIME_COMPONENT_BOOL.value
K_S8 = ffi.WASMTIME_COMPONENT_S8.value
K_U8 = ffi.WASMTIME_COMPONENT_U8.value
K_S16 = ffi.WASMTIME_COMPONENT_S16.value
K_U16 = ffi.WASMTIME_COMPONENT_U16.value
K_S32 = ffi.WASMTIME_COMPONENT_S32.value
K_U32 = ffi.WASMTIME_COMPONENT_U32.value
K_S64 = ffi.WASMTIME_COMPONENT_S64.value
K_U64 = ffi.WASMTIME_COMPONENT_U64.value
K_F32 = ffi.WASMTIME_COMPONENT_F32.value
K_F64 = ffi.WASMTIME_COMPONENT_F64.value
K_CHAR = ffi.WASMTIME_COMPONENT_CHAR.value
K_STRING = ffi.WASMTIME_COMPONENT_STRING.value
K_LIST = ffi.WASMTIME_COMPONENT_LIST.value
K_RECORD = ffi.WASMTIME_COMPONENT_RECORD.value
K_TUPLE = ffi.WASMTIME_COMPONENT_TUPLE.value
K_VARIANT = ffi.WASMTIME_COMPONENT_VARIANT.value
K_ENUM = ffi.WASMTIME_COMPONENT_ENUM.value
K_OPTION = ffi.WASMTIME_COMPONENT_OPTION.value
K_RESULT = ffi.WASMTIME_COMPONENT_RESULT.value
K_FLAGS = ffi.WASMTIME_COMPONENT_FLAGS.value
K_RESOURCE = ffi.WASMTIME_COMPONENT_RESOURCE.value

_BYTES_LIKE = (bytes, bytearray, memoryview)


# --------------------------------------------------------------------------------------------------
# Compiled converters


@dataclass(frozen=True)
class Converter:
    """Lift/lower functions for one component value type, with all type facts read once.

    ``classes`` is what stock ``ValType.add_classes`` reports; it decides whether a variant-like
    type containing this one is tagged and which untagged case a Python value selects.
    """

    lift: Lift
    lower: Lower
    classes: frozenset[type]
    name: str


@dataclass(frozen=True)
class Case:
    """An explicit case for lowering an option/result/variant, whatever its stock tagging.

    Stock wasmtime-py lowers an untagged variant-like by the payload's Python class, trying cases
    in order; when a case accepts ``object`` (an untagged option payload) that can pick the wrong
    case, e.g. an ``err`` value of ``result<option<list<u8>>, error-code>`` would lower as ``ok``.
    ``Case("err", value)`` names the case instead. Understood only by the patched converters
    (:func:`apply` active); lifting never returns it.
    """

    tag: str
    payload: Any = None


def _reset(c: CVal) -> None:
    # A consumed nested value becomes `bool false`, so its parent's drop frees nothing twice.
    c.kind = K_BOOL
    c.of.boolean = False


def _kind_error(expected: str, c: CVal) -> WasmtimeError:
    return WasmtimeError(f"component value kind {c.kind} does not match the expected type {expected}")


def _string_from_vec(vec: Any) -> str:
    size = vec.size
    text = ctypes.string_at(vec.data, size).decode("utf-8") if size else ""
    ffi.wasm_byte_vec_delete(byref(vec))
    return text


def _vec_from_str(text: str) -> Any:
    data = text.encode("utf-8")
    vec = ffi.wasm_byte_vec_t()
    ffi.wasm_byte_vec_new(
        byref(vec), len(data), ctypes.cast(ctypes.c_char_p(data), ctypes.POINTER(ctypes.c_uint8))
    )
    return vec


def _scalar(name: str, kind: int, field: str, py: type, check: Callable[[Any], bool]) -> Converter:
    def lift(c: CVal) -> Any:
        if c.kind != kind:
            raise _kind_error(name, c)
        return getattr(c.of, field)

    def lower(store: Any, val: Any, dst: CVal) -> None:
        if not check(val):
            raise TypeError(f"expected {py.__name__} for {name} type")
        dst.kind = kind
        setattr(dst.of, field, val)

    return Converter(lift, lower, frozenset({py}), name)


def _int(name: str, kind: int, field: str) -> Converter:
    return _scalar(name, kind, field, int, lambda v: isinstance(v, int))


def _bool() -> Converter:
    def lift(c: CVal) -> Any:
        if c.kind != K_BOOL:
            raise _kind_error("bool", c)
        return bool(c.of.boolean)

    def lower(store: Any, val: Any, dst: CVal) -> None:
        if not isinstance(val, bool):
            raise TypeError("expected bool for Bool type")
        dst.kind = K_BOOL
        dst.of.boolean = val

    return Converter(lift, lower, frozenset({bool}), "bool")


def _char() -> Converter:
    def lift(c: CVal) -> Any:
        if c.kind != K_CHAR:
            raise _kind_error("char", c)
        return chr(c.of.character)

    def lower(store: Any, val: Any, dst: CVal) -> None:
        if not isinstance(val, str) or len(val) != 1:
            raise TypeError("expected single-character string for Char type")
        dst.kind = K_CHAR
        dst.of.character = ord(val)

    return Converter(lift, lower, frozenset({str}), "char")


def _string(kind: int = K_STRING, name: str = "string") -> Converter:
    # `enum` values travel exactly like strings, under their own kind.
    def lift(c: CVal) -> Any:
        if c.kind != kind:
            raise _kind_error(name, c)
        return _string_from_vec(c.of.string)

    def lower(store: Any, val: Any, dst: CVal) -> None:
        if not isinstance(val, str):
            raise TypeError(f"expected str for {name} type")
        dst.kind = kind
        dst.of.string = _vec_from_str(val)

    return Converter(lift, lower, frozenset({str}), name)


def lift_bytes(c: CVal) -> bytes:
    """Consume a C ``list<u8>`` value into ``bytes`` with one strided copy (no per-byte Python)."""
    if c.kind != K_LIST:
        raise _kind_error("list<u8>", c)
    vec = c.of.list
    n = vec.size
    if n == 0:
        data = b""
    else:
        addr = ctypes.cast(vec.data, ctypes.c_void_p).value
        assert addr is not None
        # Each element is a whole wasmtime_component_val_t; the byte sits at the payload offset.
        window = (ctypes.c_ubyte * ((n - 1) * _VAL_SIZE + 1)).from_address(addr + _PAYLOAD_OFFSET)
        data = memoryview(window).cast("B")[::_VAL_SIZE].tobytes()
    ffi.wasmtime_component_vallist_delete(byref(vec))
    return data


class _KindBytes:
    """A growing run of U8 kind tags, sliced to length without allocating per call."""

    def __init__(self) -> None:
        self._buf = memoryview(bytes([K_U8]) * 4096)
        self._lock = threading.Lock()

    def take(self, n: int) -> memoryview:
        buf = self._buf
        if len(buf) < n:
            with self._lock:
                if len(self._buf) < n:
                    self._buf = memoryview(bytes([K_U8]) * max(n, 2 * len(self._buf)))
                buf = self._buf
        return buf[:n]


_U8_KINDS = _KindBytes()


def lower_bytes(val: bytes | bytearray | memoryview, dst: CVal) -> None:
    """Write ``val`` as a C ``list<u8>`` value into ``dst`` with two strided copies."""
    if not isinstance(val, _BYTES_LIKE):
        raise TypeError("expected bytes value")
    src = memoryview(val).cast("B") if isinstance(val, memoryview) else val
    n = len(src)
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(byref(raw), n)
    if n:
        addr = ctypes.cast(raw.data, ctypes.c_void_p).value
        assert addr is not None
        target = memoryview((ctypes.c_ubyte * (n * _VAL_SIZE)).from_address(addr)).cast("B")
        target[0::_VAL_SIZE] = _U8_KINDS.take(n)
        target[_PAYLOAD_OFFSET::_VAL_SIZE] = src
    dst.kind = K_LIST
    dst.of.list = raw


def _bytes_list() -> Converter:
    def lower(store: Any, val: Any, dst: CVal) -> None:
        lower_bytes(val, dst)

    return Converter(lift_bytes, lower, frozenset(_BYTES_LIKE), "list<u8>")


def _list(elem: Converter) -> Converter:
    elem_lift, elem_lower = elem.lift, elem.lower

    def lift(c: CVal) -> Any:
        if c.kind != K_LIST:
            raise _kind_error("list", c)
        vec = c.of.list
        data = vec.data
        out = []
        try:
            for i in range(vec.size):
                item = data[i]
                out.append(elem_lift(item))
                _reset(item)
        finally:
            ffi.wasmtime_component_vallist_delete(byref(vec))
        return out

    def lower(store: Any, val: Any, dst: CVal) -> None:
        if not isinstance(val, list):
            raise TypeError("expected list value")
        n = len(val)
        raw = ffi.wasmtime_component_vallist_t()
        ffi.wasmtime_component_vallist_new_uninit(byref(raw), n)
        data = raw.data
        done = 0
        try:
            for item in val:
                elem_lower(store, item, data[done])
                done += 1
        except BaseException:
            for j in range(done, n):
                _reset(data[j])
            ffi.wasmtime_component_vallist_delete(byref(raw))
            raise
        dst.kind = K_LIST
        dst.of.list = raw

    return Converter(lift, lower, frozenset({list}), f"list<{elem.name}>")


def _record(fields: list[tuple[str, Converter]]) -> Converter:
    names = tuple(name for name, _ in fields)
    lifts = tuple(conv.lift for _, conv in fields)
    lowers = tuple(conv.lower for _, conv in fields)
    count = len(fields)

    def lift(c: CVal) -> Any:
        if c.kind != K_RECORD:
            raise _kind_error("record", c)
        rec = c.of.record
        data = rec.data
        out = Record()
        attrs = out.__dict__
        try:
            for i in range(min(rec.size, count)):
                entry = data[i].val
                attrs[names[i]] = lifts[i](entry)
                _reset(entry)
        finally:
            ffi.wasmtime_component_valrecord_delete(byref(rec))
        return out

    def lower(store: Any, val: Any, dst: CVal) -> None:
        raw = ffi.wasmtime_component_valrecord_t()
        ffi.wasmtime_component_valrecord_new_uninit(byref(raw), count)
        data = raw.data
        done = 0
        try:
            for i in range(count):
                entry = data[i]
                lowers[i](store, getattr(val, names[i]), entry.val)
                entry.name = _vec_from_str(names[i])
                done += 1
        except BaseException:
            for j in range(done, count):
                _reset(data[j].val)
            ffi.wasmtime_component_valrecord_delete(byref(raw))
            raise
        dst.kind = K_RECORD
        dst.of.record = raw

    return Converter(lift, lower, frozenset({Record}), "record{" + ",".join(names) + "}")


def _tuple(elems: list[Converter]) -> Converter:
    lifts = tuple(e.lift for e in elems)
    lowers = tuple(e.lower for e in elems)
    count = len(elems)

    def lift(c: CVal) -> Any:
        if c.kind != K_TUPLE:
            raise _kind_error("tuple", c)
        tup = c.of.tuple
        data = tup.data
        out = []
        try:
            for i in range(min(tup.size, count)):
                item = data[i]
                out.append(lifts[i](item))
                _reset(item)
        finally:
            ffi.wasmtime_component_valtuple_delete(byref(tup))
        return tuple(out)

    def lower(store: Any, val: Any, dst: CVal) -> None:
        if not isinstance(val, tuple):
            raise TypeError("expected tuple type")
        if len(val) != count:
            raise TypeError("tuple length mismatch")
        raw = ffi.wasmtime_component_valtuple_t()
        ffi.wasmtime_component_valtuple_new_uninit(byref(raw), count)
        data = raw.data
        done = 0
        try:
            for i in range(count):
                lowers[i](store, val[i], data[i])
                done += 1
        except BaseException:
            for j in range(done, count):
                _reset(data[j])
            ffi.wasmtime_component_valtuple_delete(byref(raw))
            raise
        dst.kind = K_TUPLE
        dst.of.tuple = raw

    return Converter(lift, lower, frozenset({tuple}), "tuple<" + ",".join(e.name for e in elems) + ">")


@dataclass(frozen=True)
class _Cases:
    """A variant-like type's cases with the stock tagging rule evaluated once."""

    names: tuple[str, ...]
    convs: tuple[Converter | None, ...]
    tagged: bool
    match: tuple[tuple[type, ...] | None, ...]  # isinstance classes per case; None = payload-less
    index: dict[str, int]

    @classmethod
    def of(cls, cases: list[tuple[str, Converter | None]]) -> _Cases:
        # Stock `_tagged`: tagged as soon as two cases could accept the same Python class.
        seen: set[type] = set()
        tagged = False
        for _, conv in cases:
            classes = {object} if conv is None else set(conv.classes)
            if classes & seen:
                tagged = True
                break
            seen |= classes
        return cls(
            names=tuple(n for n, _ in cases),
            convs=tuple(c for _, c in cases),
            tagged=tagged,
            match=tuple(None if c is None else tuple(c.classes) for _, c in cases),
            index={n: i for i, (n, _) in enumerate(cases)},
        )

    @property
    def classes(self) -> frozenset[type]:
        if self.tagged:
            return frozenset({Variant})
        out: set[type] = set()
        for conv in self.convs:
            out |= {object} if conv is None else conv.classes
        return frozenset(out)

    def select(self, val: Any) -> tuple[int, Any]:
        """Which case a Python value lowers to, and its payload (stock `_lower` rules, plus `Case`)."""
        if type(val) is Case:
            i = self.index.get(val.tag)
            if i is None:
                raise ValueError(f"case {val.tag!r} not found in {list(self.names)}")
            return i, val.payload
        if self.tagged:
            if not isinstance(val, Variant):
                raise TypeError("expected Variant type")
            i = self.index.get(val.tag)
            if i is None:
                raise ValueError("value not valid for this variant")
            return i, val.payload
        for i, classes in enumerate(self.match):
            if classes is None:
                if val is None:
                    return i, None
            elif isinstance(val, classes):
                return i, val
        raise ValueError("value not valid for this variant")

    def lower_payload(self, store: Any, i: int, payload: Any) -> Any:
        """A freshly boxed C value for case ``i``'s payload, or None (NULL) without one."""
        conv = self.convs[i]
        if conv is None:
            return None
        raw = ffi.wasmtime_component_val_t()
        conv.lower(store, payload, raw)
        return ffi.wasmtime_component_val_new(byref(raw))

    def lift_payload(self, i: int, ptr: Any) -> Any:
        conv = self.convs[i]
        if conv is None:
            return Variant(self.names[i]) if self.tagged else None
        inner = ptr.contents
        payload = conv.lift(inner)
        _reset(inner)  # the box itself belongs to the parent value
        return Variant(self.names[i], payload) if self.tagged else payload


def _variant(cases: _Cases) -> Converter:
    def lift(c: CVal) -> Any:
        if c.kind != K_VARIANT:
            raise _kind_error("variant", c)
        var = c.of.variant
        tag = _string_from_vec(var.discriminant)
        i = cases.index.get(tag)
        if i is None:
            raise ValueError(f"tag {tag} not found in variant cases")
        return cases.lift_payload(i, var.val)

    def lower(store: Any, val: Any, dst: CVal) -> None:
        i, payload = cases.select(val)
        boxed = cases.lower_payload(store, i, payload)
        dst.kind = K_VARIANT
        dst.of.variant.discriminant = _vec_from_str(cases.names[i])
        dst.of.variant.val = boxed

    return Converter(lift, lower, cases.classes, "variant{" + ",".join(cases.names) + "}")


def _option(cases: _Cases) -> Converter:
    def lift(c: CVal) -> Any:
        if c.kind != K_OPTION:
            raise _kind_error("option", c)
        ptr = c.of.option
        return cases.lift_payload(1 if ptr else 0, ptr)

    def lower(store: Any, val: Any, dst: CVal) -> None:
        i, payload = cases.select(val)
        boxed = cases.lower_payload(store, i, payload)
        dst.kind = K_OPTION
        dst.of.option = boxed

    return Converter(lift, lower, cases.classes, "option")


def _result(cases: _Cases) -> Converter:
    def lift(c: CVal) -> Any:
        if c.kind != K_RESULT:
            raise _kind_error("result", c)
        res = c.of.result
        return cases.lift_payload(0 if res.is_ok else 1, res.val)

    def lower(store: Any, val: Any, dst: CVal) -> None:
        i, payload = cases.select(val)
        boxed = cases.lower_payload(store, i, payload)
        dst.kind = K_RESULT
        dst.of.result.is_ok = i == 0
        dst.of.result.val = boxed

    return Converter(lift, lower, cases.classes, "result")


def _flags() -> Converter:
    def lift(c: CVal) -> Any:
        if c.kind != K_FLAGS:
            raise _kind_error("flags", c)
        flags = c.of.flags
        data = flags.data
        out = {ctypes.string_at(data[i].data, data[i].size).decode("utf-8") for i in range(flags.size)}
        ffi.wasmtime_component_valflags_delete(byref(flags))
        return out

    def lower(store: Any, val: Any, dst: CVal) -> None:
        if not isinstance(val, set) or not all(isinstance(s, str) for s in val):
            raise TypeError("expected set of strings for Flags type")
        raw = ffi.wasmtime_component_valflags_t()
        ffi.wasmtime_component_valflags_new_uninit(byref(raw), len(val))
        for i, name in enumerate(val):
            raw.data[i] = _vec_from_str(name)
        dst.kind = K_FLAGS
        dst.of.flags = raw

    return Converter(lift, lower, frozenset({set}), "flags")


_AnyPtr = ctypes.POINTER(ffi.wasmtime_component_resource_any_t)
_OF_OFFSET = ffi.wasmtime_component_val_t.of.offset  # where a value's payload union starts


def _resource(owned: bool) -> Converter:
    def lift(c: CVal) -> Any:
        if c.kind != K_RESOURCE:
            raise _kind_error("resource", c)
        # ffi.take_pointer + ResourceAny._from_ptr, done directly on the value's memory (the
        # union's members all sit at its start): this runs for nearly every host call, and the
        # generic helpers build several throwaway ctypes objects each time.
        slot = ctypes.c_void_p.from_address(ctypes.addressof(c) + _OF_OFFSET)
        address = slot.value
        if address is None:
            raise ValueError("NULL resource pointer")
        ptr = ctypes.cast(address, _AnyPtr)
        slot.value = None  # moved out: the value's own cleanup must not free it
        res: ResourceAny = ResourceAny.__new__(ResourceAny)
        res._set_ptr(ptr)
        return res

    def lower(store: Any, val: Any, dst: CVal) -> None:
        if isinstance(val, ResourceAny):
            # An own handle moves into wasm; a borrow lends a clone and the caller keeps its handle.
            ptr = val._consume() if owned else ffi.wasmtime_component_resource_any_clone(val.ptr())
        elif isinstance(val, ResourceHost):
            # ResourceHost.to_any, without wrapping the new pointer in a ResourceAny only to take
            # it back out again.
            ptr = _AnyPtr()
            error = ffi.wasmtime_component_resource_host_to_any(store._context(), val.ptr(), byref(ptr))
            if error:
                raise WasmtimeError._from_ptr(error)
        else:
            raise TypeError("expected ResourceAny or ResourceHost for resource type")
        dst.kind = K_RESOURCE
        dst.of.resource = ptr

    return Converter(lift, lower, frozenset({ResourceAny, ResourceHost}), "own" if owned else "borrow")


def _stock(ty: ValType) -> Converter:
    """Types with no compiled form (future, stream, error-context, ...) keep the stock code."""

    def lift(c: CVal) -> Any:
        return ty.convert_from_c(c)

    def lower(store: Any, val: Any, dst: CVal) -> None:
        ty.convert_to_c(store, val, ctypes.pointer(dst))

    classes: set[type] = set()
    with contextlib.suppress(NotImplementedError):
        ty.add_classes(classes)
    return Converter(lift, lower, frozenset(classes), type(ty).__name__)


# Converters that depend only on the kind of type, not on its contents: built once, shared.
_SIMPLE: dict[type, Converter] = {
    Bool: _bool(),
    S8: _int("s8", K_S8, "s8"),
    U8: _int("u8", K_U8, "u8"),
    S16: _int("s16", K_S16, "s16"),
    U16: _int("u16", K_U16, "u16"),
    S32: _int("s32", K_S32, "s32"),
    U32: _int("u32", K_U32, "u32"),
    S64: _int("s64", K_S64, "s64"),
    U64: _int("u64", K_U64, "u64"),
    F32: _scalar("f32", K_F32, "f32", float, lambda v: isinstance(v, float)),
    F64: _scalar("f64", K_F64, "f64", float, lambda v: isinstance(v, float)),
    Char: _char(),
    String: _string(),
    EnumType: _string(K_ENUM, "enum"),
    FlagsType: _flags(),
    OwnType: _resource(owned=True),
    BorrowType: _resource(owned=False),
}
_BYTES = _bytes_list()


def compile_valtype(ty: ValType) -> Converter:
    """Read ``ty`` (and everything it contains) once and return its converter."""
    simple = _SIMPLE.get(type(ty))
    if simple is not None:
        return simple
    if isinstance(ty, ListType):
        elem = ty.element
        return _BYTES if isinstance(elem, U8) else _list(compile_valtype(elem))
    if isinstance(ty, RecordType):
        return _record([(name, compile_valtype(t)) for name, t in ty.fields])
    if isinstance(ty, TupleType):
        return _tuple([compile_valtype(t) for t in ty.elements])
    if isinstance(ty, VariantType):
        return _variant(_Cases.of([(n, None if t is None else compile_valtype(t)) for n, t in ty.cases]))
    if isinstance(ty, OptionType):
        return _option(_Cases.of([("none", None), ("some", compile_valtype(ty.payload))]))
    if isinstance(ty, ResultType):
        ok, err = ty.ok, ty.err
        return _result(
            _Cases.of(
                [
                    ("ok", None if ok is None else compile_valtype(ok)),
                    ("err", None if err is None else compile_valtype(err)),
                ]
            )
        )
    return _stock(ty)


# --------------------------------------------------------------------------------------------------
# Core-module memory (Spin 1.x modules, WAGI): bounds-checked, one copy


def read_memory(memory: wasmtime.Memory, store: Any, ptr: int, length: int) -> bytes:
    """``length`` bytes of a core module's memory at ``ptr``; IndexError when out of bounds.

    ``Memory.read`` clamps a range like a slice (a guest pointer past the end yields fewer bytes,
    silently) and copies twice; a guest-supplied (ptr, len) must instead be checked, as Spin traps.
    """
    size = memory.data_len(store)
    if ptr < 0 or length < 0 or ptr + length > size:
        raise IndexError(f"guest range {ptr}+{length} is outside memory of {size} bytes")
    if length == 0:
        return b""
    base = ctypes.cast(memory.data_ptr(store), ctypes.c_void_p).value
    assert base is not None
    return ctypes.string_at(base + ptr, length)


def write_memory(memory: wasmtime.Memory, store: Any, ptr: int, data: bytes | bytearray | memoryview) -> None:
    """Copy ``data`` into a core module's memory at ``ptr``; IndexError when out of bounds."""
    view = memoryview(data).cast("B")
    size = memory.data_len(store)
    if ptr < 0 or ptr + len(view) > size:
        raise IndexError(f"guest range {ptr}+{len(view)} is outside memory of {size} bytes")
    if len(view) == 0:
        return
    base = ctypes.cast(memory.data_ptr(store), ctypes.c_void_p).value
    assert base is not None
    target = (ctypes.c_ubyte * len(view)).from_address(base + ptr)
    memoryview(target).cast("B")[:] = view


# --------------------------------------------------------------------------------------------------
# Function signatures


@dataclass(frozen=True)
class Signature:
    """A component function type compiled once: converters for its params and result."""

    params: tuple[Converter, ...]
    result: Converter | None

    def call(self, func: Func, store: Any, *args: Any) -> Any:
        """Call a guest export like ``func(store, *args)``, without re-reading its type.

        The signature must have been taken from the same export of the same component (e.g. once
        per loaded component, via :func:`signature_of`). On an unpatched wasmtime-py this is the
        stock call.
        """
        if not _state.applied:
            return func(store, *args)
        n = len(self.params)
        if len(args) != n:
            raise TypeError(f"wrong number of parameters provided: given {len(args)}, expected {n}")
        params = (ffi.wasmtime_component_val_t * max(n, 1))()
        done = 0
        try:
            for i in range(n):
                self.params[i].lower(store, args[i], params[i])
                done += 1
            result = self.result
            space = ffi.wasmtime_component_val_t() if result is not None else None

            def run() -> Any:
                return ffi.wasmtime_component_func_call(
                    byref(func._func),
                    store._context(),
                    params,
                    done,
                    byref(space) if space is not None else None,
                    1 if space is not None else 0,
                )

            _enter.enter_wasm(run)
            if result is None:
                return None
            return result.lift(space)
        finally:
            for i in range(done):
                ffi.wasmtime_component_val_delete(byref(params[i]))


def signature(fty: FuncType) -> Signature:
    """Compile a :class:`FuncType` (reads the type through the C API exactly once)."""
    result = fty.result
    return Signature(
        params=tuple(compile_valtype(t) for _, t in fty.params),
        result=None if result is None else compile_valtype(result),
    )


def signature_of(func: Func, store: Any) -> Signature:
    """The compiled signature of a guest export; cache it per (component, export)."""
    return signature(func.type(store))


# --------------------------------------------------------------------------------------------------
# Per-thread state replacing the stock module globals


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


# --------------------------------------------------------------------------------------------------
# Allocator tuning (opt-in)

MiB = 1024 * 1024
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_allocator(mmap_threshold: int = 64 * MiB, trim_threshold: int = 128 * MiB) -> bool:
    """Opt-in glibc tuning for multi-MiB ``list<u8>`` values. Returns whether it took effect.

    A 1 MiB ``list<u8>`` crosses the C API as 1 Mi 32-byte values, so every conversion allocates
    tens of MiB (wasmtime's ``Vec<Val>``, the C value array). Above glibc's mmap threshold (at most
    32 MiB by default) each of those is a fresh mmap whose pages fault in one by one: ~12 ms per
    32 MiB here, a large share of a conversion. Raising the mmap threshold keeps such blocks on the
    heap, and the trim threshold lets freed blocks be reused instead of returned to the kernel.
    The cost is memory: up to ``trim_threshold`` of freed heap stays resident. Process-wide; call
    once at startup if bodies of several MiB matter more than that memory. No-op without glibc.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    )


# --------------------------------------------------------------------------------------------------
# apply()


class _State:
    applied = False
    lock = threading.Lock()
    originals: list[Any] = []


_state = _State()

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


def wasmtime_version() -> str | None:
    try:
        return importlib.metadata.version("wasmtime")
    except importlib.metadata.PackageNotFoundError:
        return None


def is_applied() -> bool:
    return _state.applied


def apply() -> bool:
    """Install the fixes (idempotent, thread-safe). Returns whether they are active.

    On a wasmtime-py version not in :data:`PATCHED_VERSIONS`, or if an expected internal is missing,
    logs a warning and leaves wasmtime untouched.
    """
    with _state.lock:
        if _state.applied:
            return True
        version = wasmtime_version()
        if version not in PATCHED_VERSIONS:
            log.warning(
                "runtime.compat: wasmtime-py %s is not one of %s; not patching (conversions stay "
                "stock: slower list<u8>, not thread-safe)",
                version,
                sorted(PATCHED_VERSIONS),
            )
            return False
        missing = [f"{mod.__name__}.{name}" for mod, name in _REQUIRED if not hasattr(mod, name)]
        if missing:
            log.warning(
                "runtime.compat: wasmtime-py internals missing (%s); not patching", ", ".join(missing)
            )
            return False
        # wasmtime holds raw pointers to the replaced ctypes callbacks for every function defined
        # before now: keep the originals alive, or those calls and finalizers would jump into freed
        # thunks.
        _state.originals = [getattr(mod, name) for mod, name in _REQUIRED if not isinstance(mod, type)] + [
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
        _state.applied = True
        log.debug("runtime.compat: patched wasmtime-py %s", version)
        return True
