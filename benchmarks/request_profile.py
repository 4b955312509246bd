"""Where a Python spin-sdk request's time goes, measured with py-spy (native stacks), not estimated.

    python benchmarks/request_profile.py [--root REPO] [--modes fresh,reuse] [--requests 3000] [--rate 40] [--nice -10]

A child process serves the Python hello of benchmarks/apps/python_hello through RunningApp.handle
(no HTTP), one request after another on one event loop, as benchmarks/runtime_bench.py does. It
compiles the component into a precompiled cache and loads it from there (as a server restart does),
warms up, freezes the loaded objects out of the cyclic GC (as `lepton-router serve` does), then:

  1. counts host calls: a second copy of the app whose host functions are wrapped in counters
     serves 100 requests (exact calls per request, by interface function; wasmtime's own WASI,
     which never enters Python, is not counted here);
  2. times requests without the profiler (wall, process CPU and minor page faults per request);
  3. waits while `py-spy record --native --idle -f raw --pid` attaches, then serves the measured
     requests under it and waits again while py-spy is stopped (so no load, warm-up or exit is in
     the profile);
  4. times requests without the profiler again;
  5. serves as many requests again under `perf record -e cpu-clock -g` (when perf is installed):
     the kernel's share of the process CPU (page faults, madvise, other system calls), which
     py-spy cannot see.
The child and py-spy run at nice -10 (--nice) so that other work preempts them less.

Every sample is one thread's stack. Samples of threads that are waiting are left out, decided on
the innermost frames (libc's own symbols are read from its debug file when installed, libc6-dbg):
  * waiting for the GIL: an innermost libc frame is pthread_cond_wait/pthread_cond_timedwait. CPython
    3.11 takes the GIL on a condition variable, while its own locks (threading, queue) use POSIX
    semaphores, and wasmtime (Rust std) waits on futexes directly, so a condition-variable wait in
    this process is a GIL wait. Reported as its own line, not in the shares.
  * blocked: epoll_wait/poll/select (the idle event loop), read (the child waiting for its next
    phase; its sockets are non-blocking), sleeps, and waits on a Python lock (the innermost
    resolved frame is PyThread_acquire_lock_timed or sem_*: idle worker threads, queues, events).
  * preempted: the innermost frame is clock_gettime in the vDSO. A clock read takes well under a
    microsecond, yet on a busy machine up to a tenth of the samples ended there: a thread whose
    time slice ran out is descheduled as a system call returns and waits there for a CPU.
Every other sample is classified by what its stack holds (first rule that matches):
  * host calls (Python): Python frames or a ctypes callback inside a call into the guest (wasm
    called back into Python); by interface function when py-spy caught the function's frame;
  * host calls (wasmtime WASI, Rust): a wasmtime_wasi frame (interfaces wasmtime serves itself);
  * memory reset and page faults: decommit/madvise/mmap/munmap/mprotect/memset under wasmtime, or
    the pooling allocator's decommit queue (py-spy sees no kernel frames: faults taken inside guest
    code count as guest code; the minor-fault count per request is printed beside the table);
  * instantiate: a new Store, Linker.instantiate, dropping a Store (pooling allocator slots);
  * guest code: a JIT frame (module "?") innermost, during a call into the guest;
  * wasmtime runtime: other wasmtime frames innermost during a call (entry/exit, libcalls);
  * then by the innermost Python frame: our Python request path (runtime/, router/), wasmtime-py
    bindings (ctypes), event loop and threads (asyncio, threading), this driver, other.
The ms per request column is the share times the wall time per request measured without the
profiler (py-spy pauses the process for each sample, so wall time under it is longer).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
REUSE_COUNT = 128
COUNTED_REQUESTS = 100
TIMED_REQUESTS = 300
WARM_UP = 200
REUSE_REQUESTS_FACTOR = 4


# ---------------------------------------------------------------------------------------------
# child: serves the requests


class HostFunctionNames:
    """Records, as components are linked, which Python function serves which interface function
    (for naming profile frames), and optionally wraps each in a call counter."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.by_code: dict[str, set[str]] = defaultdict(set)  # "file:qualname" -> interface#function
        self.counting = False
        self.calls: Counter[str] = Counter()

    def code_key(self, func: Any) -> str | None:
        for _ in range(4):  # bound methods, functools.partial
            inner = getattr(func, "__func__", None) or getattr(func, "func", None)
            if inner is None:
                break
            func = inner
        code = getattr(func, "__code__", None)
        if code is None:
            return None
        try:
            filename = str(Path(code.co_filename).resolve().relative_to(self.root))
        except ValueError:
            filename = code.co_filename
        return f"{filename}:{code.co_qualname}"

    def named(self, name: str, func: Any) -> Any:
        key = self.code_key(func)
        if key is not None:
            self.by_code[key].add(name)
        if not self.counting:
            return func
        calls = self.calls

        def counted(*args: Any) -> Any:
            calls[name] += 1
            return func(*args)

        return counted

    def install(self) -> None:
        from wasmtime.component import _linker

        names = self
        add_instance, add_func, add_resource = (
            _linker.LinkerInstance.add_instance,
            _linker.LinkerInstance.add_func,
            _linker.LinkerInstance.add_resource,
        )

        def add_instance_named(self: Any, name: str) -> Any:
            inst = add_instance(self, name)
            setattr(inst, "_profile_name", name)  # noqa: B010 (an attribute LinkerInstance does not declare)
            return inst

        def add_func_named(self: Any, name: str, func: Any) -> None:
            full = f"{getattr(self, '_profile_name', '')}#{name}"
            add_func(self, name, names.named(full, func))

        def add_resource_named(self: Any, name: str, ty: Any, dtor: Any) -> None:
            full = f"{getattr(self, '_profile_name', '')}#[resource-drop]{name}"
            add_resource(self, name, ty, names.named(full, dtor))

        _linker.LinkerInstance.add_instance = add_instance_named  # type: ignore[method-assign]
        _linker.LinkerInstance.add_func = add_func_named  # type: ignore[method-assign]
        _linker.LinkerInstance.add_resource = add_resource_named  # type: ignore[method-assign]


def wait_for_parent() -> None:
    os.read(0, 16)  # a plain blocking read: classified as waiting


def report(kind: str, payload: dict[str, Any]) -> None:
    print(kind, json.dumps(payload), flush=True)


async def child(root: Path, mode: str, requests: int) -> None:
    import gc

    from runtime import Runtime
    from runtime.testing import component, loaded_app
    from runtime.types import AppSettings, MiB
    from tests.support import fixtures
    from tests.support.runtime_helpers import read, request

    names = HostFunctionNames(root)
    names.install()
    wasm = fixtures.build_python_app(root / "benchmarks" / "apps" / "python_hello")
    extra = {"max_instance_reuse_count": REUSE_COUNT} if mode == "reuse" else {}
    settings = AppSettings(timeout_s=30.0, memory_bytes=256 * MiB, max_body_bytes=16 * MiB, **extra)  # type: ignore[arg-type]
    cache = Path(tempfile.mkdtemp(prefix="lepton-profile-cache-"))
    compiling = Runtime(cache)  # compiles into the cache; the measured runtime loads from it
    await compiling.load_app(loaded_app([component("c", wasm)], name="py"), settings)
    compiling.close()
    runtime = Runtime(cache)
    app = await runtime.load_app(loaded_app([component("c", wasm)], name="py"), settings)
    # The counting copy gets a Runtime of its own: within one, apps of the same component share one
    # linker (built once, uncounted, by the first load).
    names.counting = True
    counting_runtime = Runtime(cache)
    counted_app = await counting_runtime.load_app(loaded_app([component("c", wasm)], name="counted"), settings)
    names.counting = False

    async def serve(running: Any, n: int) -> None:
        for _ in range(n):
            resp = await running.handle(request("/"))
            body = await read(resp)
            assert resp.status == 200 and body.startswith(b"Hello"), (resp.status, body)

    await serve(counted_app, WARM_UP // 4)
    names.calls.clear()
    await serve(counted_app, COUNTED_REQUESTS)
    calls = {name: n / COUNTED_REQUESTS for name, n in names.calls.items()}
    counting_runtime.close()
    await serve(app, WARM_UP)
    gc.collect()
    gc.freeze()

    async def timed(n: int) -> dict[str, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu, wall = time.process_time(), time.perf_counter()
        await serve(app, n)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - usage.ru_minflt
        return {"wall_ms": wall / n * 1000, "cpu_ms": cpu / n * 1000, "minflt": faults / n}

    before = await timed(TIMED_REQUESTS)
    report("READY", {"pid": os.getpid(), "calls": calls, "timed_before": before,
                     "host_functions": {k: sorted(v) for k, v in names.by_code.items()}})
    wait_for_parent()
    wall = time.perf_counter()
    await serve(app, requests)
    report("DONE", {"wall_ms": (time.perf_counter() - wall) / requests * 1000})
    wait_for_parent()
    report("TIMED", {"timed_after": await timed(TIMED_REQUESTS)})
    wait_for_parent()  # the kernel's view: perf record -e cpu-clock over the same requests
    await serve(app, requests)
    report("DONE", {})
    wait_for_parent()
    runtime.close()


# ---------------------------------------------------------------------------------------------
# parent: runs the child under py-spy and classifies the samples


class Libc:
    """Names the libc addresses py-spy leaves bare, from libc's debug file (libc6-dbg)."""

    def __init__(self, pid: int) -> None:
        self.base = 0
        self.debug: Path | None = None
        self.names: dict[str, str] = {}
        path = None
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 6 and parts[5].endswith("/libc.so.6") and parts[2] == "00000000":
                self.base, path = int(parts[0].split("-")[0], 16), parts[5]
                break
        if path is None:
            return
        notes = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
        match = re.search(r"Build ID: ([0-9a-f]+)", notes)
        if match:
            build_id = match.group(1)
            debug = Path("/usr/lib/debug/.build-id") / build_id[:2] / f"{build_id[2:]}.debug"
            self.debug = debug if debug.exists() else None

    def resolve(self, addresses: set[str]) -> None:
        todo = sorted(a for a in addresses if a not in self.names)
        if not todo or self.debug is None:
            return
        offsets = [hex(int(a, 16) - self.base) for a in todo]
        out = subprocess.run(["addr2line", "-f", "-e", str(self.debug), *offsets], capture_output=True,
                             text=True).stdout.splitlines()
        for addr, name in zip(todo, out[0::2], strict=False):
            self.names[addr] = name if name != "??" else addr


FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse_raw(path: Path) -> Iterator[tuple[list[tuple[str, str]], int]]:
    """py-spy's raw (collapsed) output: root;...;leaf count, each frame `name (file:line)`."""
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = []
        for frame in stack.split(";"):
            match = FRAME.match(frame)
            frames.append((match.group("name"), match.group("file")) if match else (frame, ""))
        yield frames, int(count)


# libc functions by their plain names (see libc_name): waits, the GIL's waits, memory work.
WAIT_CALLS = {"epoll_wait", "epoll_pwait", "poll", "ppoll", "select", "pselect", "read", "libc_read",
              "clock_nanosleep", "nanosleep", "sem_wait", "sem_timedwait", "sem_clockwait", "new_sem_wait",
              "do_futex_wait", "futex_abstimed_wait_common", "futex_wait", "lll_lock_wait",
              "lll_lock_wait_private"}
GIL_CALLS = {"pthread_cond_wait", "pthread_cond_timedwait", "pthread_cond_clockwait"}
LOCK_WAITS = ("PyThread_acquire_lock_timed",)
MEMORY_CALLS = ("madvise", "mmap", "munmap", "mprotect", "memset")
MEMORY_FRAMES = ("decommit", "DecommitQueue", "reset_with_anon_memory", "MemoryImageSlot")
INSTANTIATE_FRAMES = ("wasmtime_component_linker_instantiate", "wasmtime_store_new", "wasmtime_store_delete",
                      "PreparedGuest.new_store", "PreparedGuest.instantiate", "Store.__init__")
CALLBACK_FRAMES = ("_CallPythonObject", "closure_fcn")
GUEST_CALL_FRAMES = ("wasmtime_component_func_call", "wasmtime_func_call", "wasmtime_component_func_post_return")


def libc_name(name: str) -> str:
    """A libc symbol without its internal decoration: ___pthread_cond_timedwait64, __GI_madvise ->
    pthread_cond_timedwait, madvise; __memset_avx2_unaligned_erms -> memset_avx2_unaligned_erms."""
    return re.sub(r"^_*(GI_+)?|64$", "", name)


def classify(frames: list[tuple[str, str]], host_functions: dict[str, list[str]]) -> tuple[str, str]:
    """(category, detail) of one sample; category "" for a waiting thread."""
    leaf, leaf_file = frames[-1]
    # The innermost run of libc frames (what the thread is doing in libc) and the frame that called it.
    first = len(frames)
    while first > 0 and frames[first - 1][1] == "libc.so.6":
        first -= 1
    in_libc = [libc_name(name) for name, _ in frames[first:]]
    caller = frames[first - 1][0] if first > 0 else ""
    if any(name in GIL_CALLS for name in in_libc):
        return "", "gil"
    if any(name in WAIT_CALLS for name in in_libc) or caller.startswith(LOCK_WAITS):
        return "", "blocked"
    if leaf_file == "[vdso]" and len(frames) > 1 and frames[-2][0] == "clock_gettime":
        # A clock read is well under a microsecond, yet on a busy machine many samples end here:
        # a thread whose time slice ran out is descheduled when a system call returns, and waits
        # there for a CPU. That is the machine's other work, not this request's.
        return "", "preempted"
    inner = in_libc[-1] if in_libc else leaf
    names = [name for name, _ in frames]
    # Inside a call into the guest, Python runs only as a host function (py-spy shows the Python
    # frames of the callback, and sometimes the ctypes frames that lead to them).
    call = next((i for i, name in enumerate(names) if name in GUEST_CALL_FRAMES), None)
    if call is not None:
        host = next((i for i in range(call + 1, len(frames)) if names[i] in CALLBACK_FRAMES
                     or (frames[i][1].endswith(".py") and not frames[i][1].startswith("wasmtime/"))), None)
        if host is not None:
            return "host calls (Python)", host_function_of(frames[host:], host_functions)
    if any("wasmtime_wasi" in name for name in names):
        return "host calls (wasmtime WASI, Rust)", ""
    in_wasmtime = any(file == "_libwasmtime.so" for _, file in frames)
    if (in_wasmtime and any(name.startswith(MEMORY_CALLS) for name in in_libc)) or any(
        m in name for name in names for m in MEMORY_FRAMES
    ):
        return "memory reset and page faults", inner
    if any(name in INSTANTIATE_FRAMES for name in names):
        return "instantiate (Store, instance, drop)", ""
    in_guest_call = any(name in GUEST_CALL_FRAMES for name in names)
    if in_guest_call and leaf_file == "?":
        return "guest code (JIT)", ""
    if in_guest_call and (leaf_file == "_libwasmtime.so" or leaf_file == "?"):
        return "wasmtime runtime during the call", ""
    python = [f for f in frames if f[1].endswith(".py")]
    where = python[-1][1] if python else leaf_file
    if where.startswith(("runtime/", "router/")):
        if "gc_collect_main" in names:
            return "Python GC (in our request path)", ""
        return "our Python request path", where
    if where.startswith("wasmtime/"):
        return "wasmtime-py bindings (ctypes)", where
    if where.startswith(("asyncio/", "threading.py", "selectors.py", "concurrent/", "queue.py")):
        return "event loop and threads", where
    if where.startswith(("benchmarks/", "tests/")) or where == "request_profile.py":
        return "this driver", where
    return "other", f"{where} {inner}"


def host_function_of(frames: list[tuple[str, str]], host_functions: dict[str, list[str]]) -> str:
    """The interface function a host-call sample is in: the first Python frame after the callback
    that serves exactly one interface function (else the first that serves several)."""
    shared = None
    for name, file in frames:
        served = host_functions.get(f"{file}:{name}")
        if served and len(served) == 1:
            return served[0]
        if served and shared is None:
            shared = " | ".join(served[:3]) + (" | ..." if len(served) > 3 else "")
    return shared or "(ctypes callback, dispatch, conversions: no function frame)"


def read_message(proc: subprocess.Popen[str], kind: str) -> dict[str, Any]:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(kind + " "):
            message: dict[str, Any] = json.loads(line[len(kind) + 1:])
            return message
        sys.stderr.write(line)
    raise RuntimeError(f"the child ended before {kind} (exit {proc.wait()})")


def tell(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def profile(root: Path, mode: str, requests: int, rate: int, nice: int, out_dir: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--root", str(root),
           "--requests", str(requests)]
    nice_cmd = ["nice", "-n", str(nice)] if nice else []
    proc = subprocess.Popen(nice_cmd + cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=root, env=env)
    try:
        ready = read_message(proc, "READY")
        pid = ready["pid"]
        libc = Libc(pid)
        raw = out_dir / f"{mode}-{root.name}.txt"
        spy_log_path = out_dir / f"{mode}-{root.name}.log"
        with spy_log_path.open("w") as spy_out:
            spy = subprocess.Popen([*nice_cmd, "py-spy", "record", "--native", "--idle", "--rate", str(rate), "-f", "raw",
                                    "-o", str(raw), "--pid", str(pid)], stdout=spy_out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while "Sampling process" not in spy_log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)  # attached
        time.sleep(0.5)
        load = os.getloadavg()
        tell(proc)
        done = read_message(proc, "DONE")
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=120)
        spy_log = spy_log_path.read_text()
        tell(proc)
        after = read_message(proc, "TIMED")
        kernel = perf_window(proc, pid, out_dir / f"{mode}-{root.name}.perf")
        tell(proc)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    samples = list(parse_raw(raw))
    libc.resolve({name for frames, _ in samples for name, file in frames if file == "libc.so.6" and name.startswith("0x")})
    resolved = [([(libc.names.get(n, n) if f == "libc.so.6" else n, f) for n, f in frames], c) for frames, c in samples]
    (out_dir / f"{mode}-{root.name}.json").write_text(json.dumps(resolved))
    errors = re.search(r"Errors: (\d+)", spy_log)
    return {"mode": mode, "root": str(root), "ready": ready, "done": done, "after": after, "load": load,
            "samples": resolved,
            "raw": str(raw), "rate": rate, "requests": requests, "kernel": kernel,
            "spy_errors": int(errors.group(1)) if errors else None,
            "lagging": "behind in sampling" in spy_log}


def perf_window(proc: subprocess.Popen[str], pid: int, data: Path) -> Counter[str] | None:
    """CPU samples (perf's cpu-clock, kernel stacks included) of the child over the same requests,
    by what the kernel was doing: page faults, madvise, other system calls. py-spy sees no kernel
    frames; a cpu-clock sample is only taken of a thread on a CPU, so there is nothing to leave out."""
    if not shutil.which("perf"):
        tell(proc)
        read_message(proc, "DONE")
        return None
    perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "499", "-g", "-p", str(pid),
                             "-o", str(data)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    tell(proc)
    read_message(proc, "DONE")
    perf.send_signal(signal.SIGINT)
    perf.wait(timeout=60)
    script = subprocess.run(["perf", "script", "-i", str(data), "-F", "ip,sym,dso"], capture_output=True, text=True)
    return kernel_kinds(script.stdout)


def kernel_kinds(perf_script: str) -> Counter[str]:
    """perf script's samples (ip, symbol, dso per frame) by what the thread was doing."""
    kinds: Counter[str] = Counter()
    for sample in perf_script.split("\n\n"):
        frames = [line.split(None, 1) for line in sample.strip().splitlines() if line.strip()]
        symbols = [frame[1] if len(frame) > 1 else "" for frame in frames]
        if not symbols:
            continue
        if any("exc_page_fault" in s for s in symbols):
            # Where the faulting access was: the innermost user-space frame (the guest's compiled
            # code is a mapped .cwasm file of the cache, so perf names it).
            user = [sym for (ip, *_), sym in zip(frames, symbols, strict=True) if not ip.startswith("ffffffff")]
            where = "in guest code" if user and ".cwasm)" in user[0] else "elsewhere"
            kinds[f"page faults (kernel), {where}"] += 1
        elif any("madvise" in s for s in symbols):
            kinds["madvise (kernel)"] += 1
        elif any(s.startswith(("entry_SYSCALL", "do_syscall")) for s in symbols):
            kinds["other system calls (kernel)"] += 1
        elif any(s.startswith(("asm_", "irq", "__irq", "__sysvec")) for s in symbols):
            kinds["interrupts (kernel)"] += 1
        else:
            kinds["user space"] += 1
    return kinds


def table(result: dict[str, Any]) -> None:
    ready, after = result["ready"], result["after"]
    host_functions = ready["host_functions"]
    categories: Counter[str] = Counter()
    details: dict[str, Counter[str]] = defaultdict(Counter)
    waits: Counter[str] = Counter()
    for frames, count in result["samples"]:
        category, detail = classify(frames, host_functions)
        if category:
            categories[category] += count
            details[category][detail] += count
        else:
            waits[detail] += count
    active = sum(categories.values())
    timed = [ready["timed_before"], after["timed_after"]]
    wall = sum(t["wall_ms"] for t in timed) / 2
    cpu = sum(t["cpu_ms"] for t in timed) / 2
    faults = sum(t["minflt"] for t in timed) / 2
    label = "fresh instance per request" if result["mode"] == "fresh" else f"max_instance_reuse_count {REUSE_COUNT}"
    print(f"\n== {label}   ({result['root']})")
    print(f"   {result['requests']} profiled requests, py-spy --native --rate {result['rate']}: {active} samples of "
          f"running threads; left out: {waits['gil']} waiting for the GIL, {waits['blocked']} blocked, "
          f"{waits['preempted']} preempted at a clock read "
          f"(py-spy errors {result['spy_errors']}{', py-spy fell behind' if result['lagging'] else ''})")
    print(f"   without the profiler (mean of a run before and after, {TIMED_REQUESTS} requests each): "
          f"wall {wall:.2f} ms/request ({timed[0]['wall_ms']:.2f}, {timed[1]['wall_ms']:.2f}), "
          f"process CPU {cpu:.2f} ms/request, {faults:.0f} minor page faults/request; "
          f"under the profiler {result['done']['wall_ms']:.2f} ms/request; load average "
          f"{result['load'][0]:.2f}")
    print(f"   {'category':<44} {'samples':>8} {'share':>7} {'ms/request':>11}")
    for category, count in categories.most_common():
        share = count / active
        print(f"   {category:<44} {count:>8} {share:>6.1%} {share * wall:>11.3f}")
    print(f"   {'total':<44} {active:>8} {1:>6.0%} {wall:>11.3f}")
    host = details.get("host calls (Python)", Counter())
    calls = ready["calls"]
    if host or calls:
        print(f"\n   host calls (Python) by interface function   {'calls/request':>13} {'samples':>8} {'ms/request':>11}")
        for name in sorted(set(host) | set(calls), key=lambda n: (-host.get(n, 0), -calls.get(n, 0), n)):
            count = host.get(name, 0)
            print(f"   {name:<56} {calls.get(name, 0):>13.1f} {count:>8} {count / active * wall:>11.3f}")
        print(f"   {'total':<56} {sum(calls.values()):>13.1f} {sum(host.values()):>8} "
              f"{sum(host.values()) / active * wall:>11.3f}")
    kernel = result["kernel"]
    if kernel:
        total = sum(kernel.values())
        print(f"\n   perf record -e cpu-clock over {result['requests']} more requests ({total} CPU samples; ms of "
              f"process CPU per request = share x {cpu:.2f})")
        for kind, count in kernel.most_common():
            print(f"   {kind:<44} {count:>8} {count / total:>6.1%} {count / total * cpu:>11.3f}")
    ours = details.get("our Python request path", Counter())
    if ours:
        print("\n   our Python request path by module (innermost Python frame): "
              + ", ".join(f"{where} {count / active * wall:.3f}" for where, count in ours.most_common(8)))
    other = details.get("other", Counter())
    if other:
        print("   other, largest: " + ", ".join(f"{where} ({count})" for where, count in other.most_common(5)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=HERE, help="the lepton-router tree to profile (default: this one)")
    parser.add_argument("--modes", default="fresh,reuse", help="fresh (an instance per request), reuse (max_instance_reuse_count 128)")
    parser.add_argument("--requests", type=int, default=3000, help="profiled requests (reuse: 4 times as many)")
    parser.add_argument("--rate", type=int, default=40, help="py-spy samples per second (native unwinding is slow)")
    parser.add_argument("--nice", type=int, default=-10,
                        help="niceness of the child and py-spy (root may go below 0): other work on a shared "
                             "machine then preempts the measured threads less; 0 to leave it")
    parser.add_argument("--keep", type=Path, help="keep py-spy's raw output in this directory")
    parser.add_argument("--child", choices=("fresh", "reuse"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    root = args.root.resolve()
    if args.child:
        sys.path.insert(0, str(root))
        asyncio.run(child(root, args.child, args.requests))
        return 0
    if not shutil.which("py-spy"):
        print("py-spy not found (pip install py-spy; perf and libc6-dbg are optional: apt-get install "
              "linux-perf libc6-dbg)", file=sys.stderr)
        return 1
    out_dir = args.keep or Path(tempfile.mkdtemp(prefix="lepton-profile-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"request profile of the Python spin-sdk hello, RunningApp.handle, one request at a time; "
          f"{os.cpu_count()} CPUs")
    for mode in args.modes.split(","):
        # A reused instance's request is about a fifth of a fresh one's: more of them for the samples.
        requests = args.requests * (REUSE_REQUESTS_FACTOR if mode == "reuse" else 1)
        table(profile(root, mode, requests, args.rate, args.nice, out_dir))
    print(f"\nraw py-spy output: {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
