"""runtime.engine.patches: stock wasmtime-py 50 conversions vs patched, measured in one run.

    python benchmarks/compat_bench.py [--quick]

Uses the pass-through component of tests/support/compat_component.py: each ``f-NAME(x)`` call
lowers x into the guest, the guest calls the host import ``h-NAME`` (lift x, lower the reply) and
returns the reply (lift); ``repeat-*`` exports make many host calls from one export call.
Thread-safety counts for stock are taken before runtime.engine.patches is imported (importing the runtime
package applies the patch process-wide). Timings alternate stock and patched rounds after that:
stock keeps its own linker (defined before the patch, so it keeps the stock host-call callback)
and the stock ``Func.__call__``.

For comparison it also times 1 MiB through wasmtime's Rust wasip2 streams, handed to a guest by
Python host functions (benchmarks/compat_streams/: component text generated from the core WAT and
WIT in its src/): what a wasi:http host could get by serving body streams from Rust instead of
converting list<u8> values in Python.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import wasmtime
from wasmtime.component import Component, Func, Linker, Record, Variant

from tests.support.compat_component import CASES, passthrough_wat

MiB = 1024 * 1024


class Bench:
    def __init__(self, engine: wasmtime.Engine, component: Component, call: Callable[..., Any]) -> None:
        self.call = call  # how exports are invoked: the stock Func.__call__ or the patched one
        self.engine = engine
        self.component = component
        self.reply: dict[str, Any] = {}
        self.counter: Any = None
        self.linker = Linker(engine)
        with self.linker.root() as root:
            for case in CASES:
                root.add_func(f"h-{case.name}", self._host(case.name))

    def _host(self, name: str) -> Callable[..., Any]:
        def impl(store: Any, x: Any) -> Any:
            return self.reply.get(name, x)

        return impl

    def guest(self) -> tuple[wasmtime.Store, Any]:
        store = wasmtime.Store(self.engine)
        return store, self.linker.instantiate(store, self.component)


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def bytes_roundtrip(bench: Bench, size: int, repeat: int) -> float:
    """Median seconds for one f-bytes call moving `size` bytes each way (4 conversions)."""
    store, inst = bench.guest()
    func = inst.get_func(store, "f-bytes")
    up, down = random.randbytes(size), random.randbytes(size)
    bench.reply["bytes"] = down

    def call() -> None:
        assert bench.call(func, store, up) == down

    return statistics.median(timed(call, repeat))


def calls_per_second(bench: Bench, name: str, value: Any, n: int, sig: Any = None) -> float:
    """Guest export calls per second (each makes one host call); `sig`: a patches.Signature."""
    store, inst = bench.guest()
    func = inst.get_func(store, f"f-{name}")
    bench.reply.pop(name, None)

    def invoke(s: Any, v: Any) -> Any:
        return bench.call(func, s, v) if sig is None else sig.call(func, s, v)

    invoke(store, value)
    start = time.perf_counter()
    for _ in range(n):
        invoke(store, value)
    return n / (time.perf_counter() - start)


def host_call_us(bench: Bench, export: str, value: Any, n: int) -> float:
    """Microseconds per host call, from one export call that makes `n` of them."""
    store, inst = bench.guest()
    func = inst.get_func(store, export)
    bench.call(func, store, 10, value)
    start = time.perf_counter()
    bench.call(func, store, n, value)
    return (time.perf_counter() - start) / n * 1e6


def thread_errors(bench: Bench, threads: int, calls: int) -> int:
    """Wrong or failed answers with `threads` threads doing untagged variant/option round trips."""
    errors = 0
    lock = threading.Lock()

    def worker(seed: int) -> None:
        nonlocal errors
        rng = random.Random(seed)
        store, inst = bench.guest()
        funcs = {n: inst.get_func(store, f"f-{n}") for n in ("res", "var", "opt", "unit-res")}
        bad = 0
        for i in range(calls):
            name = ("res", "var", "opt", "unit-res")[i % 4]
            value = {
                "res": lambda: rng.choice(["text", 7]),
                "var": lambda: rng.choice([None, 5, "s"]),
                "opt": lambda: rng.choice([None, b"xy"]),
                "unit-res": lambda: rng.choice([None, "e"]),
            }[name]()
            try:
                ok = bench.call(funcs[name], store, value) == value
            except Exception:
                ok = False
                store, inst = bench.guest()
                funcs = {n: inst.get_func(store, f"f-{n}") for n in funcs}
            bad += not ok
        with lock:
            errors += bad

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    return errors


CORE_WAT = """
(module
  (import "host" "f" (func $f (param i32) (result i32)))
  (func (export "run") (param i32) (result i32) (call $f (local.get 0))))
"""


class _Tagged(Exception):
    pass


def exception_mixups(bench: Bench, threads: int, calls: int) -> tuple[int, int]:
    """Host functions that raise, called from `threads` threads: exceptions a caller got that were
    not its own (or none at all), for component and for core-module host functions."""

    def raiser(*args: Any) -> Any:
        raise _Tagged(threading.get_ident(), bench.counter.n)

    bench.counter = threading.local()
    comp_linker = Linker(bench.engine)
    with comp_linker.root() as root:
        for case in CASES:
            root.add_func(f"h-{case.name}", raiser)
    module = wasmtime.Module(bench.engine, CORE_WAT)
    core_linker = wasmtime.Linker(bench.engine)
    core_linker.define_func(
        "host", "f", wasmtime.FuncType([wasmtime.ValType.i32()], [wasmtime.ValType.i32()]), raiser
    )

    def count(call: Callable[[int], Any]) -> int:
        me, bad = threading.get_ident(), 0
        for n in range(calls):
            bench.counter.n = n
            try:
                call(n)
                bad += 1
            except _Tagged as exc:
                bad += exc.args != (me, n)
            except Exception:
                bad += 1
        return bad

    def component_worker(_: int) -> int:
        def call(n: int) -> Any:
            store = wasmtime.Store(bench.engine)  # a host exception poisons the instance
            return bench.call(
                comp_linker.instantiate(store, bench.component).get_func(store, "f-num"), store, n
            )

        return count(call)

    def core_worker(_: int) -> int:
        store = wasmtime.Store(bench.engine)
        run = core_linker.instantiate(store, module).exports(store)["run"]
        return count(lambda n: run(store, n))

    with ThreadPoolExecutor(threads) as pool:
        comp = sum(pool.map(component_worker, range(threads)))
        core = sum(pool.map(core_worker, range(threads)))
    comp_linker.close()
    return comp, core


STREAMS = Path(__file__).resolve().parent / "compat_streams"


def rust_streams(engine: wasmtime.Engine, repeat: int) -> dict[str, float]:
    """The same bytes through wasmtime's Rust wasip2 streams instead of list<u8> values.

    A helper component re-exports wasi:cli/stdout and stdin (Rust, from add_wasip2) so Python gets
    them as ResourceAny and hands them to the guest from its own host functions; the guest then
    writes/reads with wasi:io/streams calls that wasmtime serves in Rust (stdout goes to a Python
    callback, stdin is a file here; a FIFO streams as well). Medians of `repeat` runs, in ms.
    """
    import os
    import tempfile

    from wasmtime import Store, WasiConfig

    guest = Component(engine, (STREAMS / "guest.wat").read_text())
    helper = Component(engine, (STREAMS / "helper.wat").read_text())
    linker = Linker(engine)
    linker.add_wasip2()
    handed: dict[str, Any] = {}
    with linker.root() as root, root.add_instance("exp:rs/body") as body:
        body.add_func("out-stream", lambda store: handed.pop("out"))
        body.add_func("in-stream", lambda store: handed.pop("in"))

    def fresh(stdin: str | None) -> tuple[Store, Any, list[bytes]]:
        chunks: list[bytes] = []
        store = Store(engine)
        config = WasiConfig()
        config.stdout_custom = lambda data: chunks.append(bytes(data))
        if stdin is not None:
            config.stdin_file = stdin
        store.set_wasi(config)
        streams = linker.instantiate(store, helper)
        handed["out"] = streams.get_func(store, "get-out")(store)
        handed["in"] = streams.get_func(store, "get-in")(store)
        return store, linker.instantiate(store, guest), chunks

    data = random.randbytes(MiB)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "body")
        Path(path).write_bytes(data)
        write_ms, echo_ms = [], []
        for _ in range(repeat):
            store, inst, chunks = fresh(None)
            start = time.perf_counter()
            inst.get_func(store, "run")(store, MiB // 4096)
            write_ms.append((time.perf_counter() - start) * 1e3)
            assert sum(map(len, chunks)) == MiB
            store, inst, chunks = fresh(path)
            start = time.perf_counter()
            assert inst.get_func(store, "echo")(store) == MiB
            echo_ms.append((time.perf_counter() - start) * 1e3)
            assert b"".join(chunks) == data
    linker.close()
    return {"write": statistics.median(write_ms), "echo": statistics.median(echo_ms)}


def record_value() -> Record:
    rec = Record()
    rec.id, rec.name, rec.tags, rec.data, rec.flag, rec.note = 7, "name", ["a", "b"], b"data", True, None
    return rec


def perf(
    label: str, bench: Bench, args: argparse.Namespace, sigs: dict[str, Any] | None = None
) -> dict[str, float]:
    out: dict[str, float] = {}
    for size in (64 * 1024, MiB):
        repeat = 1 if (label == "stock" and size == MiB) else args.repeat
        out[f"bytes_{size}"] = bytes_roundtrip(bench, size, repeat)
    n = args.calls if label != "stock" else max(args.calls // 4, 200)
    out["num_cps"] = calls_per_second(bench, "num", 42, n)
    out["rec_cps"] = calls_per_second(bench, "rec", record_value(), n)
    out["res_cps"] = calls_per_second(bench, "res", "ok-text", n)
    out["wide_cps"] = calls_per_second(bench, "wide", Variant("c7", "payload"), n)
    out["host_num_us"] = host_call_us(bench, "repeat-num", 7, n * 4)
    out["host_text_us"] = host_call_us(bench, "repeat-text", "héllo", n * 4)
    if sigs is not None:
        out["num_sig_cps"] = calls_per_second(bench, "num", 42, n, sigs["num"])
        out["rec_sig_cps"] = calls_per_second(bench, "rec", record_value(), n, sigs["rec"])
        out["wide_sig_cps"] = calls_per_second(bench, "wide", Variant("c7", "payload"), n, sigs["wide"])
    return out


def safety(bench: Bench, args: argparse.Namespace) -> dict[str, float]:
    comp, core = exception_mixups(bench, args.threads, args.thread_calls)
    return {
        "thread_errors": float(thread_errors(bench, args.threads, args.thread_calls)),
        "exc_component": float(comp),
        "exc_core": float(core),
    }


def medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--thread-calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3, help="alternating stock/patched rounds (medians)")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.calls, args.thread_calls, args.rounds = 1, 400, 100, 1

    engine = wasmtime.Engine()
    component = Component(engine, passthrough_wat())
    sys.setswitchinterval(1e-5)  # provoke thread interleavings in the thread test

    # The stock pieces stay usable after apply(): host functions defined before it keep the stock
    # callback, and the stock Func.__call__ is kept here. So the stock and patched timings can be
    # taken in alternating rounds (this machine is shared and noisy); only the thread-safety
    # checks need the process still unpatched.
    stock_call = Func.__call__
    stock_bench = Bench(engine, component, stock_call)
    stock = safety(stock_bench, args)

    from runtime.engine import patches  # importing the runtime package applies the patch

    assert patches.apply()
    bench = Bench(engine, component, Func.__call__)
    sig_store, sig_inst = bench.guest()
    sigs = {
        n: patches.signature_of(sig_inst.get_func(sig_store, f"f-{n}"), sig_store)
        for n in ("num", "rec", "wide")
    }
    stock_rounds, patched_rounds = [], []
    for _ in range(args.rounds):
        stock_rounds.append(perf("stock", stock_bench, args))
        patched_rounds.append(perf("patched", bench, args, sigs))
    stock.update(medians(stock_rounds))
    patched = medians(patched_rounds)
    patched.update(safety(bench, args))
    tuned_ok = patches.tune_allocator()
    tuned = {f"bytes_{size}": bytes_roundtrip(bench, size, args.repeat) for size in (64 * 1024, MiB)}
    streams = rust_streams(engine, max(args.repeat, 3))

    print(
        f"wasmtime-py {patches.wasmtime_version()}, python {sys.version.split()[0]}, one run, same process, "
        f"medians of {args.rounds} alternating stock/patched rounds"
    )
    print(f"{'measure':48} {'stock':>12} {'patched':>12} {'ratio':>8}")

    def row(name: str, a: float, b: float, unit: str, better_high: bool) -> None:
        ratio = (b / a if better_high else a / b) if a and b else float("nan")
        print(f"{name:48} {a:>10.1f}{unit:>2} {b:>10.1f}{unit:>2} {ratio:>7.1f}x")

    for size in (64 * 1024, MiB):
        key = f"bytes_{size}"
        row(
            f"list<u8> {size // 1024} KiB round trip (4 conversions), ms",
            stock[key] * 1e3,
            patched[key] * 1e3,
            "",
            False,
        )
        row(
            f"list<u8> {size // 1024} KiB conversion throughput, MiB/s",
            4 * size / MiB / stock[key],
            4 * size / MiB / patched[key],
            "",
            True,
        )
    for size in (64 * 1024, MiB):
        key = f"bytes_{size}"
        row(
            f"list<u8> {size // 1024} KiB round trip + tune_allocator ({'on' if tuned_ok else 'n/a'}), ms",
            stock[key] * 1e3,
            tuned[key] * 1e3,
            "",
            False,
        )
    print("for comparison: the same bytes through Rust wasip2 streams handed out by Python (rust_streams)")
    print(f"{'  guest writes 1 MiB (4 KiB writes), ms':48} {'':>12} {streams['write']:>10.1f}")
    print(f"{'  guest echoes 1 MiB (64 KiB reads, 4 KiB writes), ms':48} {'':>12} {streams['echo']:>10.1f}")
    row("u64 export + host call, calls/s", stock["num_cps"], patched["num_cps"], "", True)
    row("record export + host call, calls/s", stock["rec_cps"], patched["rec_cps"], "", True)
    row("result<string,u32> export + host call, calls/s", stock["res_cps"], patched["res_cps"], "", True)
    row("variant<40 cases> export + host call, calls/s", stock["wide_cps"], patched["wide_cps"], "", True)
    row("host call u64 -> u64 (guest loop), us/call", stock["host_num_us"], patched["host_num_us"], "", False)
    row(
        "host call string -> string (guest loop), us/call",
        stock["host_text_us"],
        patched["host_text_us"],
        "",
        False,
    )
    row(
        "u64 via Signature.call (export type cached), calls/s",
        stock["num_cps"],
        patched["num_sig_cps"],
        "",
        True,
    )
    row("record via Signature.call, calls/s", stock["rec_cps"], patched["rec_sig_cps"], "", True)
    row("variant<40 cases> via Signature.call, calls/s", stock["wide_cps"], patched["wide_sig_cps"], "", True)
    # Host functions hold their Bench: free the linkers now, not during interpreter teardown.
    stock_bench.linker.close()
    bench.linker.close()
    calls = args.threads * args.thread_calls
    print(
        f"{'wrong answers, ' + str(args.threads) + ' threads x ' + str(args.thread_calls) + ' untagged calls':48} "
        f"{int(stock['thread_errors']):>12} {int(patched['thread_errors']):>12}   (of {calls})"
    )
    for key, what in (("exc_component", "component"), ("exc_core", "core-module")):
        print(
            f"{'host exceptions raised in the wrong thread, ' + what:48} "
            f"{int(stock[key]):>12} {int(patched[key]):>12}   (of {calls})"
        )


if __name__ == "__main__":
    main()
