"""Compiled converters between wasmtime-py component values and the C API's values.

Each component value type is compiled once into a :class:`Converter` (lift/lower with every type
fact read once), a function type into a :class:`Signature`. The values produced and accepted are
exactly the stock ones (see the package docstring); ``list<u8>`` moves with two strided memory
copies instead of a Python loop. :class:`Case` names an option/result/variant case explicitly, for
values the stock tagging rule cannot express.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Callable
from ctypes import byref
from dataclasses import dataclass
from typing import Any

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
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
)

from runtime.engine.patches.state import state

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


# `wasm_byte_vec_new` declared to take the data as `bytes` directly (a pointer into the bytes
# object): the stock declaration wants `POINTER(c_uint8)`, and the `ctypes.cast` that needs cost
# three times the copy itself. Every string and name a host call returns goes through here.
# (`dll[name]` makes a new function object: wasmtime-py's own declaration is left as it is.)
_byte_vec_new = ffi.dll["wasm_byte_vec_new"]
_byte_vec_new.restype = None
_byte_vec_new.argtypes = [ctypes.POINTER(ffi.wasm_byte_vec_t), ctypes.c_size_t, ctypes.c_char_p]
_ByteVec = ffi.wasm_byte_vec_t


def _vec_from_bytes(data: bytes) -> Any:
    """A new C byte vector holding a copy of `data` (its new owner frees it)."""
    vec = _ByteVec()
    _byte_vec_new(vec, len(data), data)
    return vec


def _vec_from_str(text: str) -> Any:
    return _vec_from_bytes(text.encode("utf-8"))


def _set_vec(slot: Any, data: bytes) -> None:
    """`slot = _vec_from_bytes(data)` for a byte vector inside a C value, made in place (no
    temporary vector to build and copy)."""
    _byte_vec_new(slot, len(data), data)


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
        data = val.encode("utf-8")  # (may fail: before `dst` says it holds a string)
        dst.kind = kind
        _set_vec(dst.of.string, data)

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
    encoded = tuple(name.encode("utf-8") for name in names)
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
                _set_vec(entry.name, encoded[i])
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
    encoded = tuple(name.encode("utf-8") for name in cases.names)

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
        _set_vec(dst.of.variant.discriminant, encoded[i])
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
        if not state.applied:
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
