"""Bad tenants vs a good one: does one app's load cost only that app?

    python benchmarks/tenants_bench.py [--duration 5] [--rounds 3] [--settle 15]

One `lepton-router serve` with three apps on one port:
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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import wasmtime

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.router_bench import Result, free_port, lepton, rss_mib, wait_http, wrk  # noqa: E402

WAT = ROOT / "tests" / "fixtures" / "wat"
ABUSERS = 8  # connections per bad app


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
    args = parser.parse_args()
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
