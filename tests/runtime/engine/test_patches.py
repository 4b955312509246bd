"""runtime.engine.patches against real wasmtime and a real component (tests/support/compat_component.py)."""

from __future__ import annotations

import ctypes
import logging
import random
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from wasmtime import _ffi as ffi
from wasmtime.component import Component, FuncType, Linker, Record, Variant
from wasmtime.component import _linker as wt_linker
from wasmtime.component import _types as wt_types

from runtime.engine import patches
from runtime.engine.patches import host_calls, install
from runtime.engine.patches import state as patch_state
from tests.support.compat_component import CASES, passthrough_wat

MiB = 1024 * 1024


@pytest.fixture(scope="module", autouse=True)
def _patched() -> None:
    assert patches.apply() is True


# ------------------------------------------------------------------------------------------------
# Random values of every case's type


def _text(rng: random.Random) -> str:
    alphabet = "abcXYZ019 -_/é✓😀"
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 24)))


def _bytes(rng: random.Random, limit: int = 300) -> bytes:
    return rng.randbytes(rng.randrange(0, limit))


def _rec(rng: random.Random) -> Record:
    rec = Record()
    rec.id = rng.randrange(0, 2**64)
    rec.name = _text(rng)
    rec.tags = [_text(rng) for _ in range(rng.randrange(0, 4))]
    rec.data = _bytes(rng, 64)
    rec.flag = rng.random() < 0.5
    rec.note = None if rng.random() < 0.5 else _text(rng)
    return rec


def _char(rng: random.Random) -> str:
    while True:
        cp = rng.randrange(0, 0x110000)
        if not 0xD800 <= cp <= 0xDFFF:
            return chr(cp)


GENERATORS: dict[str, Callable[[random.Random], Any]] = {
    "bytes": _bytes,
    # result<string, u32> is untagged (str vs int): a bare str is ok, a bare int is err.
    "res": lambda r: _text(r) if r.random() < 0.5 else r.randrange(0, 2**32),
    # result<u32, u32> is tagged: both cases accept int.
    "tres": lambda r: Variant(r.choice(["ok", "err"]), r.randrange(0, 2**32)),
    # result<_, string>: ok is None, err is a str.
    "unit-res": lambda r: None if r.random() < 0.5 else _text(r),
    "opt": lambda r: None if r.random() < 0.3 else _bytes(r),
    # result<option<list<u8>>, u32>: untagged, and `ok` accepts any object (see patches.Case)
    "optres": lambda r: None if r.random() < 0.3 else _bytes(r),
    "var": lambda r: r.choice([None, r.randrange(0, 2**32), _text(r)]),
    "tvar": lambda r: r.choice(
        [Variant("a", r.randrange(0, 2**32)), Variant("b", r.randrange(0, 9)), Variant("c")]
    ),
    "rec": _rec,
    "recs": lambda r: [_rec(r) for _ in range(r.randrange(0, 4))],
    "tup": lambda r: (r.randrange(-(2**31), 2**31), r.uniform(-1e9, 1e9), _char(r), _text(r)),
    "color": lambda r: r.choice(["red", "green", "blue"]),
    "perms": lambda r: {p for p in ("read", "write", "exec") if r.random() < 0.5},
    "wide": lambda r: (lambda i: Variant(f"c{i}", (r.randrange(0, 2**32), _text(r), None)[i % 3]))(
        r.randrange(40)
    ),
    "text": _text,
    "num": lambda r: r.randrange(0, 2**64),
}


def test_every_case_has_a_generator() -> None:
    assert {c.name for c in CASES} == set(GENERATORS)


def _same(a: Any, b: Any) -> bool:
    # Record.__eq__ only compares one way; compare both and the attribute sets.
    if isinstance(a, Record) or isinstance(b, Record):
        return (
            isinstance(a, Record)
            and isinstance(b, Record)
            and vars(a).keys() == vars(b).keys()
            and all(_same(vars(a)[k], vars(b)[k]) for k in vars(a))
        )
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


# ------------------------------------------------------------------------------------------------
# The host side: each thread says what the guest should pass in and what the host replies


@dataclass
class _Expect:
    arg: Any = None
    reply: Any = None
    seen: list[Any] = field(default_factory=list)


_tls = threading.local()


def _host(name: str) -> Callable[..., Any]:
    def impl(store: Any, x: Any) -> Any:
        exp: _Expect = _tls.expect
        exp.seen.append((name, x))
        return exp.reply

    return impl


@pytest.fixture(scope="module")
def engine() -> wasmtime.Engine:
    return wasmtime.Engine()


@pytest.fixture(scope="module")
def component(engine: wasmtime.Engine) -> Component:
    return Component(engine, passthrough_wat())


@pytest.fixture(scope="module")
def linker(engine: wasmtime.Engine) -> Linker:
    linker = Linker(engine)
    with linker.root() as root:
        for case in CASES:
            root.add_func(f"h-{case.name}", _host(case.name))
    return linker


class Guest:
    """One store + instance (stores are single-threaded: one per thread)."""

    def __init__(self, engine: wasmtime.Engine, linker: Linker, component: Component) -> None:
        self.store = wasmtime.Store(engine)
        self.instance = linker.instantiate(self.store, component)
        self.funcs = {c.name: self.instance.get_func(self.store, f"f-{c.name}") for c in CASES}

    def roundtrip(self, name: str, arg: Any, reply: Any) -> Any:
        exp = _Expect(arg=arg, reply=reply)
        _tls.expect = exp
        func = self.funcs[name]
        assert func is not None
        got = func(self.store, arg)
        assert len(exp.seen) == 1, exp.seen
        seen_name, seen_arg = exp.seen[0]
        assert seen_name == name
        assert _same(seen_arg, arg), f"{name}: host saw {seen_arg!r}, guest was given {arg!r}"
        return got


def test_each_case_roundtrips_both_directions(
    engine: wasmtime.Engine, linker: Linker, component: Component
) -> None:
    guest = Guest(engine, linker, component)
    rng = random.Random(1)
    for case in CASES:
        for _ in range(30):
            arg, reply = GENERATORS[case.name](rng), GENERATORS[case.name](rng)
            got = guest.roundtrip(case.name, arg, reply)
            assert _same(got, reply), f"{case.name}: guest returned {got!r}, host replied {reply!r}"


def test_untagged_and_tagged_shapes_match_stock_rules(
    engine: wasmtime.Engine, linker: Linker, component: Component
) -> None:
    guest = Guest(engine, linker, component)
    # untagged: the Python class picks the case, and lifting returns the bare payload
    assert guest.roundtrip("res", "fine", 7) == 7
    assert guest.roundtrip("res", 7, "fine") == "fine"
    assert guest.roundtrip("unit-res", None, "bad") == "bad"
    assert guest.roundtrip("unit-res", "bad", None) is None
    assert guest.roundtrip("var", None, 5) == 5
    assert guest.roundtrip("opt", b"", None) is None
    assert guest.roundtrip("opt", None, b"") == b""
    # tagged: Variant in, Variant out
    assert guest.roundtrip("tres", Variant("err", 1), Variant("ok", 2)) == Variant("ok", 2)
    assert guest.roundtrip("tvar", Variant("c"), Variant("b", 3)) == Variant("b", 3)
    with pytest.raises(TypeError):
        guest.funcs["tres"](guest.store, 5)  # type: ignore[misc]


def test_explicit_case_selects_what_stock_rules_cannot(
    engine: wasmtime.Engine, linker: Linker, component: Component
) -> None:
    guest = Guest(engine, linker, component)
    func = guest.funcs["optres"]
    assert func is not None
    # By stock rules 7 would be tried as `ok` (whose option payload accepts object) and fail.
    _tls.expect = exp = _Expect(reply=patches.Case("err", 9))
    assert func(guest.store, patches.Case("err", 7)) == 9  # lifted bare, as stock does
    assert exp.seen == [("optres", 7)]
    _tls.expect = exp = _Expect(reply=patches.Case("ok", None))
    assert func(guest.store, patches.Case("ok", b"x")) is None
    assert exp.seen == [("optres", b"x")]
    # Case also works for tagged types and options
    tres = guest.funcs["tres"]
    assert tres is not None
    _tls.expect = exp = _Expect(reply=patches.Case("ok", 2))
    assert tres(guest.store, patches.Case("err", 1)) == Variant("ok", 2)
    assert exp.seen == [("tres", Variant("err", 1))]
    _tls.expect = _Expect(reply=patches.Case("none"))
    opt = guest.funcs["opt"]
    assert opt is not None
    assert opt(guest.store, patches.Case("some", b"abc")) is None
    with pytest.raises(ValueError):
        opt(guest.store, patches.Case("maybe", b"abc"))


def test_bytes_like_values_lower_as_list_u8(
    engine: wasmtime.Engine, linker: Linker, component: Component
) -> None:
    guest = Guest(engine, linker, component)
    data = bytes(range(256)) * 3
    assert guest.roundtrip("bytes", data, bytearray(data[::-1])) == data[::-1]
    _tls.expect = _Expect(reply=memoryview(data)[10:20])
    func = guest.funcs["bytes"]
    assert func is not None
    assert func(guest.store, bytearray(b"xy")) == data[10:20]


def test_one_mib_list_u8_both_directions(
    engine: wasmtime.Engine, linker: Linker, component: Component
) -> None:
    guest = Guest(engine, linker, component)
    rng = random.Random(2)
    up, down = rng.randbytes(MiB), rng.randbytes(MiB)
    assert guest.roundtrip("bytes", up, down) == down
    # and inside nested values: option<list<u8>>, a record's list<u8>
    assert guest.roundtrip("opt", down, up) == up
    rec = _rec(rng)
    rec.data = up
    back = _rec(rng)
    back.data = down
    assert _same(guest.roundtrip("rec", rec, back), back)


def test_conversions_are_correct_under_eight_threads(
    engine: wasmtime.Engine, linker: Linker, component: Component
) -> None:
    rounds = 40

    def worker(seed: int) -> int:
        guest = Guest(engine, linker, component)
        rng = random.Random(seed)
        calls = 0
        for _ in range(rounds):
            for case in CASES:
                arg, reply = GENERATORS[case.name](rng), GENERATORS[case.name](rng)
                got = guest.roundtrip(case.name, arg, reply)
                assert _same(got, reply), f"thread {seed} {case.name}: got {got!r}, expected {reply!r}"
                calls += 1
        return calls

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(100, 108)))
    assert results == [rounds * len(CASES)] * 8


class _HostFailure(Exception):
    def __init__(self, owner: int, n: int) -> None:
        super().__init__(owner, n)
        self.owner = owner
        self.n = n


def test_host_exceptions_reach_the_thread_that_raised_them(
    engine: wasmtime.Engine, component: Component
) -> None:
    linker = Linker(engine)

    def failing(store: Any, x: Any) -> Any:
        raise _HostFailure(threading.get_ident(), _tls.n)

    with linker.root() as root:
        for case in CASES:
            root.add_func(f"h-{case.name}", failing)

    def worker(_: int) -> int:
        me = threading.get_ident()
        for n in range(60):
            _tls.n = n
            store = wasmtime.Store(engine)  # a host exception poisons the instance: fresh one each time
            func = linker.instantiate(store, component).get_func(store, "f-num")
            assert func is not None
            with pytest.raises(_HostFailure) as info:
                func(store, n)
            assert (info.value.owner, info.value.n) == (me, n)
        return 60

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(worker, range(8))) == 480


CORE_WAT = """
(module
  (import "host" "f" (func $f (param i32) (result i32)))
  (func (export "run") (param i32) (result i32) (call $f (local.get 0))))
"""


@pytest.mark.parametrize("how", ["linker", "func"])
def test_core_module_host_exceptions_stay_on_their_thread(engine: wasmtime.Engine, how: str) -> None:
    module = wasmtime.Module(engine, CORE_WAT)
    ty = wasmtime.FuncType([wasmtime.ValType.i32()], [wasmtime.ValType.i32()])

    def host(n: int) -> int:
        if n % 3 == 0:
            return n + 1
        raise _HostFailure(threading.get_ident(), n)

    linker = wasmtime.Linker(engine)
    if how == "linker":
        linker.define_func("host", "f", ty, host)

    def worker(_: int) -> int:
        me = threading.get_ident()
        store = wasmtime.Store(engine)
        if how == "linker":
            instance = linker.instantiate(store, module)
        else:
            instance = wasmtime.Instance(store, module, [wasmtime.Func(store, ty, host)])
        run = instance.exports(store)["run"]
        assert isinstance(run, wasmtime.Func)
        for n in range(90):
            if n % 3 == 0:
                assert run(store, n) == n + 1
                continue
            with pytest.raises(_HostFailure) as info:
                run(store, n)
            assert (info.value.owner, info.value.n) == (me, n)
        return 90

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(worker, range(8))) == 720


def test_host_result_of_the_wrong_type_raises_in_the_caller(
    engine: wasmtime.Engine, component: Component
) -> None:
    linker = Linker(engine)
    with linker.root() as root:
        for case in CASES:
            root.add_func(f"h-{case.name}", lambda store, x: "not a number")
    store = wasmtime.Store(engine)
    func = linker.instantiate(store, component).get_func(store, "f-num")
    assert func is not None
    with pytest.raises(TypeError):
        func(store, 1)


def test_signature_call_without_rereading_types(
    engine: wasmtime.Engine, linker: Linker, component: Component
) -> None:
    probe = Guest(engine, linker, component)
    sigs = {c.name: patches.signature_of(probe.funcs[c.name], probe.store) for c in CASES}  # type: ignore[arg-type]
    rng = random.Random(3)
    for _ in range(3):  # fresh store per "request", signatures reused
        guest = Guest(engine, linker, component)
        for case in CASES:
            arg, reply = GENERATORS[case.name](rng), GENERATORS[case.name](rng)
            _tls.expect = exp = _Expect(reply=reply)
            got = sigs[case.name].call(guest.funcs[case.name], guest.store, arg)  # type: ignore[arg-type]
            assert _same(exp.seen[0][1], arg)
            assert _same(got, reply)
    with pytest.raises(TypeError):
        sigs["num"].call(guest.funcs["num"], guest.store)  # type: ignore[arg-type]


def test_host_signature_cache_is_evicted_when_wasmtime_frees_the_definition(
    engine: wasmtime.Engine, component: Component
) -> None:
    before = set(wt_linker.FUNCTIONS.handles)
    linker = Linker(engine)
    with linker.root() as root:
        for case in CASES:
            root.add_func(f"h-{case.name}", _host(case.name))
    mine = set(wt_linker.FUNCTIONS.handles) - before
    assert len(mine) == len(CASES)
    guest = Guest(engine, linker, component)
    guest.roundtrip("num", 1, 2)
    assert mine & set(host_calls._host_signatures)
    del guest
    linker.close()
    assert not mine & set(host_calls._host_signatures)
    assert not mine & set(wt_linker.FUNCTIONS.handles)


# ------------------------------------------------------------------------------------------------
# Compiled converters vs the stock ones, value by value (no wasm involved)


def _param_types(component: Component, engine: wasmtime.Engine) -> Iterator[tuple[str, Any]]:
    exports = component.type.exports(engine)
    for case in CASES:
        fty = exports[f"f-{case.name}"].ty
        assert isinstance(fty, FuncType)
        yield case.name, fty.params[0][1]


def test_compiled_converters_agree_with_stock(engine: wasmtime.Engine, component: Component) -> None:
    rng = random.Random(4)
    for name, ty in _param_types(component, engine):
        conv = patches.compile_valtype(ty)
        for _ in range(20):
            value = GENERATORS[name](rng)
            raw = ffi.wasmtime_component_val_t()
            ty.convert_to_c(None, value, ctypes.pointer(raw))  # stock lower
            assert _same(conv.lift(raw), value), name  # compiled lift
            raw = ffi.wasmtime_component_val_t()
            conv.lower(None, value, raw)  # compiled lower
            assert _same(ty.convert_from_c(raw), value), name  # stock lift


def test_classes_match_stock_add_classes(engine: wasmtime.Engine, component: Component) -> None:
    for name, ty in _param_types(component, engine):
        stock: set[type] = set()
        ty.add_classes(stock)
        mine = patches.compile_valtype(ty).classes
        if name in ("bytes", "opt", "optres"):
            assert mine - {bytearray, memoryview} == stock  # list<u8> also lowers other bytes-likes
        else:
            assert mine == stock, name


DEFINED_BEFORE_APPLY = """
import gc
import wasmtime
from wasmtime.component import Component, Linker
from tests.support.compat_component import CASES, passthrough_wat

CORE_WAT = %r
assert "runtime" not in " ".join(__import__("sys").modules)
engine = wasmtime.Engine()
component = Component(engine, passthrough_wat())
linker = Linker(engine)
with linker.root() as root:
    for case in CASES:
        root.add_func(f"h-{case.name}", lambda store, x: x)
core = wasmtime.Linker(engine)
core.define_func("host", "f", wasmtime.FuncType([wasmtime.ValType.i32()], [wasmtime.ValType.i32()]), lambda n: n + 1)

from runtime.engine import patches  # (a Runtime applies the patches when it is made)
assert patches.apply()
gc.collect()
# ctypes callback thunks come from libffi's closure pool: new ones reuse freed slots, so a freed
# stock callback would now point at one of these.
import ctypes
reuse = [ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda p: None) for _ in range(64)]

store = wasmtime.Store(engine)
assert linker.instantiate(store, component).get_func(store, "f-bytes")(store, b"abc") == b"abc"
assert core.instantiate(store, wasmtime.Module(engine, CORE_WAT)).exports(store)["run"](store, 41) == 42
del store
linker.close()
core.close()
gc.collect()
print("survived")
"""


def test_functions_defined_before_apply_keep_working() -> None:
    """wasmtime keeps raw pointers to the stock callbacks: apply() must keep them alive."""
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.run(
        [sys.executable, "-c", DEFINED_BEFORE_APPLY % CORE_WAT],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("survived")


def test_core_memory_helpers_are_bounds_checked(engine: wasmtime.Engine) -> None:
    store = wasmtime.Store(engine)
    instance = wasmtime.Instance(store, wasmtime.Module(engine, '(module (memory (export "m") 1))'), [])
    memory = instance.exports(store)["m"]
    assert isinstance(memory, wasmtime.Memory)
    payload = random.Random(5).randbytes(1000)
    patches.write_memory(memory, store, 100, payload)
    assert patches.read_memory(memory, store, 100, 1000) == payload
    assert bytes(memory.read(store, 100, 1100)) == payload  # agrees with wasmtime's own view
    patches.write_memory(memory, store, 65536 - 3, memoryview(b"xyz"))
    assert patches.read_memory(memory, store, 65533, 3) == b"xyz"
    assert patches.read_memory(memory, store, 65536, 0) == b""
    for ptr, length in ((65535, 2), (-1, 1), (0, 65537)):
        with pytest.raises(IndexError):
            patches.read_memory(memory, store, ptr, length)
    with pytest.raises(IndexError):
        patches.write_memory(memory, store, 65535, b"ab")


def test_apply_is_idempotent() -> None:
    assert patches.apply() is True
    assert patches.apply() is True
    assert patches.is_applied()
    assert wt_linker.func_impl is host_calls._func_impl


def test_unknown_wasmtime_version_warns_and_patches_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fresh = patch_state._State()
    monkeypatch.setattr(install, "state", fresh)
    monkeypatch.setattr(install, "wasmtime_version", lambda: "49.0.0")
    sentinel = object()
    monkeypatch.setattr(wt_linker, "func_impl", sentinel)
    with caplog.at_level(logging.WARNING, logger="runtime.engine.patches"):
        assert patches.apply() is False
    assert "49.0.0" in caplog.text
    assert wt_linker.func_impl is sentinel
    assert not patches.is_applied()


def test_stock_case_cache_race_reproduced_deterministically_and_fixed(
    monkeypatch: pytest.MonkeyPatch, engine: wasmtime.Engine, component: Component
) -> None:
    """Stock `_lower` on one thread, another thread's `_lower` forced into its check window.

    The interleaving is forced by pausing the victim right after it filled the shared case cache;
    the intruder then runs the real stock `_lower` of another untagged type. With stock's module-global
    set the victim then tests its value against the intruder's classes; with the patch it cannot.
    """
    types = dict(_param_types(component, engine))
    opt_ty, res_ty = types["opt"], types["res"]  # option<list<u8>>, result<string, u32>: both untagged
    list_cls = type(opt_ty.payload)
    original = list_cls.add_classes

    def interleaved() -> str:
        in_window, intruded = threading.Event(), threading.Event()
        victim_ident: list[int] = []

        def hooked(self: Any, s: Any) -> None:
            original(self, s)
            if s is wt_types.case_test_cache and threading.get_ident() in victim_ident:
                in_window.set()
                assert intruded.wait(5)

        monkeypatch.setattr(list_cls, "add_classes", hooked)

        def victim() -> str:
            victim_ident.append(threading.get_ident())
            raw = ffi.wasmtime_component_val_t()
            try:
                opt_ty.convert_to_c(None, b"abc", ctypes.pointer(raw))
            except ValueError:
                return "wrong case"
            ffi.wasmtime_component_val_delete(ctypes.byref(raw))
            return "ok"

        def intruder() -> None:
            assert in_window.wait(5)
            raw = ffi.wasmtime_component_val_t()
            res_ty.convert_to_c(None, "text", ctypes.pointer(raw))
            ffi.wasmtime_component_val_delete(ctypes.byref(raw))
            intruded.set()

        with ThreadPoolExecutor(2) as pool:
            outcome = pool.submit(victim)
            pool.submit(intruder).result()
            result = outcome.result()
        monkeypatch.setattr(list_cls, "add_classes", original)
        return result

    patched_cache = wt_types.case_test_cache
    monkeypatch.setattr(wt_types, "case_test_cache", set())  # stock wasmtime-py 50.0.1
    assert interleaved() == "wrong case"
    monkeypatch.setattr(wt_types, "case_test_cache", patched_cache)
    assert interleaved() == "ok"
