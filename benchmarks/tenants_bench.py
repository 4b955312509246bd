"""Tenants: does one app's load cost only that app, and what does each configured app cost?

    python benchmarks/tenants_bench.py [--duration 5] [--rounds 3] [--settle 15] [--apps 10000]
                                       [--only abuse|many]

Many tenants (--apps N): one server with N apps (the WAT hello on N distinct hosts, one digest)
against one with a single app, both from the same warm precompiled cache: time from start to
ready, RSS once ready, and the throughput of one of the N apps against the single app (wrk,
alternating rounds, medians). Targets (10,000 apps): ready < 30 s, RSS < 600 MB, >= 0.95x.

Bad tenants: one `lepton-router serve` with three apps on one port:
  healthy  the WAT hello (fresh instance per request, as always);
  looper   the WAT guest's /loop (spins until its deadline: timeout "1s");
  eater    the WAT guest's /oom (grows memory by 64 MiB; its limit, memory "64MiB", refuses: trap).
Each round measures the healthy app alone, then while wrk hammers looper and eater with 8
connections each; rounds alternate, medians are printed. Afterwards: RSS and threads of the
server at the start, at the end of the load and `--settle` seconds later.
Targets: healthy under abuse >= 0.3x its alone throughput, no errors on it; RSS back within
256 MiB of its start after settling.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import wasmtime

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.router_bench import (  # noqa: E402
    Proc,
    Result,
    free_port,
    lepton,
    median_result,
    rss_mib,
    wait_http,
    wrk,
)
from benchmarks.telemetry_bench import cpu_seconds  # noqa: E402

WAT = ROOT / "tests" / "fixtures" / "wat"
ABUSERS = 8  # connections per bad app
MiB_TO_MB = 1.048576


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return -1


def _layout(work: Path, name: str, wat: Path) -> str:
    import registry

    app_dir = work / f"app-{name}"
    app_dir.mkdir()
    wasm = app_dir / f"{name}.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(wat.read_text()))
    lock = {
        "spin_lock_version": 0,
        "metadata": {"name": name, "version": "1", "trigger": {"type": "http"}, "triggers": {"http": {}}},
        "triggers": [{"id": "t", "trigger_type": "http", "trigger_config": {"component": name, "route": "/..."}}],
        "components": [{"id": name, "source": {"content_type": "application/wasm", "source": wasm.as_uri()}}],
    }
    (app_dir / "spin.lock").write_text(json.dumps(lock))
    source = f"oci-layout:{work / 'layout'}:{name}"
    registry.push_app(app_dir / "spin.lock", source)
    return source


def _routes(work: Path) -> str:
    hello = _layout(work, "healthy", WAT / "hello.wat")
    guest = _layout(work, "guest", WAT / "guest.wat")
    return (
        f'[server]\ncache_dir = "{work / "cache"}"\n\n'
        f'[apps.healthy]\nsource = "{hello}"\nhosts = ["healthy.test"]\n\n'
        f'[apps.looper]\nsource = "{guest}"\nhosts = ["looper.test"]\ntimeout = "1s"\n\n'
        f'[apps.eater]\nsource = "{guest}"\nhosts = ["eater.test"]\nmemory = "64MiB"\n'
    )


def _abuse(base: str, duration: float) -> list[subprocess.Popen[bytes]]:
    procs = []
    for host, path in (("looper.test", "/loop"), ("eater.test", "/oom")):
        cmd = ["wrk", "-t1", f"-c{ABUSERS}", f"-d{round(duration) + 2}s", "--timeout", "5s", "-H", f"Host: {host}",
               f"{base}{path}"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1.0)  # let the abusers fill their threads first
    return procs


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=15)
    parser.add_argument("--apps", type=int, default=10_000, help="apps in the many-tenants server")
    parser.add_argument("--only", choices=("abuse", "many"), help="run one of the two benchmarks")
    args = parser.parse_args()
    if args.only != "abuse":
        many_tenants(args.apps, args.rounds, args.duration)
    if args.only != "many":
        bad_tenants(args)
    return 0


def _many_routes(work: Path, source: str, apps: int) -> str:
    lines = [f'[server]\ncache_dir = "{work / "cache"}"\nstate_dir = "{work / "state"}"\n',
             f'[apps.main]\nsource = "{source}"\nhosts = ["main.test"]\n']
    lines.extend(f'[apps.tenant{i}]\nsource = "{source}"\nhosts = ["tenant{i}.test"]\n' for i in range(apps - 1))
    return "\n".join(lines)


def _start_ready(work: Path, name: str, routes_text: str) -> tuple[Proc, str, float]:
    """Start a server and wait for its readiness endpoint: (server, base url, seconds to ready)."""
    routes = work / f"routes-{name}.toml"
    routes.write_text(routes_text)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    server = lepton(work, routes, port)
    wait_http(f"{base}/.well-known/lepton/ready", "x", 1800)
    return server, base, time.monotonic() - started


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def many_tenants(apps: int, rounds: int, duration: float) -> None:
    with tempfile.TemporaryDirectory(prefix="tenants-many-") as tmp:
        work = Path(tmp)
        source = _layout(work, "hello", WAT / "hello.wat")
        servers: list[Proc] = []
        try:
            # A first start fills the registry and precompiled caches; then both servers start warm
            # (a component compiled in this process and one loaded from the cache could differ).
            cold, _, cold_ready = _start_ready(work, "one", _many_routes(work, source, 1))
            cold.stop()
            one, one_base, one_ready = _start_ready(work, "one", _many_routes(work, source, 1))
            servers.append(one)
            print(f"1 app: ready in {cold_ready:.1f}s (cold cache), {one_ready:.1f}s (warm), "
                  f"RSS {rss_mib(one.proc.pid):.0f} MiB  ({_load()})", flush=True)
            many, many_base, many_ready = _start_ready(work, "many", _many_routes(work, source, apps))
            servers.append(many)
            many_rss = rss_mib(many.proc.pid)
            print(f"{apps} apps: ready in {many_ready:.1f}s (warm cache), RSS {many_rss:.0f} MiB, "
                  f"threads {_threads(many.proc.pid)}  ({_load()})", flush=True)
            one_rss = rss_mib(one.proc.pid)
            runs: dict[str, list[Result]] = {"one": [], "many": []}
            # Server CPU per request: what each request costs the server, which the other jobs
            # sharing the machine disturb much less than they disturb req/s.
            cpu_per_request: dict[str, list[float]] = {"one": [], "many": []}
            pids = {"one": one.proc.pid, "many": many.proc.pid}
            for i in range(rounds):
                # Alternate which goes first, so drift in the machine's load hits both alike.
                order = (("one", one_base), ("many", many_base)) if i % 2 == 0 else (("many", many_base), ("one", one_base))
                for name, base in order:
                    wrk("warm-up", base + "/", "main.test", 1, 8)
                    before = cpu_seconds(pids[name])
                    result = wrk(name, base + "/", "main.test", duration, 8)
                    cpu_per_request[name].append((cpu_seconds(pids[name]) - before) / max(1.0, result.rps * duration))
                    runs[name].append(result)
            many_rss_after = rss_mib(many.proc.pid)
        finally:
            for server in servers:
                server.stop()
    a = median_result("1 app", runs["one"])
    b = median_result(f"1 of {apps} apps", runs["many"])
    print(f"many tenants: medians of {rounds} alternating rounds, wrk -t1 -c8 -d{duration:g}s  ({_load()})")
    print(f"  {a.line()}")
    print(f"  {b.line()}")
    print(f"{apps} apps ready from a warm cache:  {many_ready:.1f} s  (target < 30 s)")
    print(f"{apps} apps RSS once ready:           {many_rss * MiB_TO_MB:.0f} MB = {many_rss:.0f} MiB  (target < 600 MB;"
          f" 1 app: {one_rss:.0f} MiB; after the load: {many_rss_after:.0f} MiB)")
    print(f"{apps} apps / 1 app req/s:             {b.rps / a.rps:.2f}  (target >= 0.95)")
    cpu_one, cpu_many = (statistics.median(cpu_per_request[k]) * 1e6 for k in ("one", "many"))
    print(f"server CPU per request:               1 app {cpu_one:.0f} us, 1 of {apps} apps {cpu_many:.0f} us: "
          f"1 app / {apps} apps {cpu_one / cpu_many:.2f}  (the steadier form of the req/s ratio)")


def bad_tenants(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="tenants-bench-") as tmp:
        work = Path(tmp)
        routes = work / "routes.toml"
        routes.write_text(_routes(work))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = lepton(work, routes, port)
        try:
            wait_http(base + "/", "healthy.test")
            pid = server.proc.pid
            wrk("warm-up", base + "/", "healthy.test", 2, 8)
            rss_start, threads_start = rss_mib(pid), _threads(pid)
            alone: list[Result] = []
            abused: list[Result] = []
            for _ in range(args.rounds):
                alone.append(wrk("healthy alone", base + "/", "healthy.test", args.duration, 8))
                abusers = _abuse(base, args.duration)
                abused.append(wrk("healthy, 2 bad apps x 8 conns", base + "/", "healthy.test", args.duration, 8))
                for p in abusers:
                    p.wait(timeout=60)
            rss_loaded, threads_loaded = rss_mib(pid), _threads(pid)
            time.sleep(args.settle)
            rss_settled, threads_settled = rss_mib(pid), _threads(pid)
        finally:
            server.stop()

    def med(runs: list[Result], name: str) -> Result:
        return Result(name, statistics.median(r.rps for r in runs), statistics.median(r.p50_ms for r in runs),
                      statistics.median(r.p99_ms for r in runs), sum(r.errors for r in runs))

    a, b = med(alone, "healthy alone"), med(abused, "healthy, 2 bad apps x 8 conns")
    print(f"medians of {args.rounds} alternating rounds, wrk -t1 -c8 -d{args.duration:g}s on the healthy app:")
    print(f"  {a.line()}")
    print(f"  {b.line()}")
    print(f"healthy under abuse / alone req/s:   {b.rps / a.rps:.2f}  (target >= 0.30)")
    print(f"healthy p99 under abuse / alone:     {b.p99_ms / a.p99_ms:.1f}")
    print(f"errors on the healthy app:           {a.errors + b.errors}  (target 0)")
    print(f"RSS MiB: start {rss_start:.0f}, end of load {rss_loaded:.0f}, after {args.settle:g}s {rss_settled:.0f}"
          f"  (target: within 256 MiB of start: {rss_settled - rss_start:+.0f})")
    print(f"threads: start {threads_start}, end of load {threads_loaded}, after {args.settle:g}s {threads_settled}")


if __name__ == "__main__":
    sys.exit(main())
