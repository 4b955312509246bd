"""Should freed instance memory stay resident? LEPTON_KEEP_RESIDENT measured on SDK guests.

wasmtime's pooling allocator can keep up to K bytes of each freed linear-memory slot resident
instead of handing the pages back to the kernel (madvise) and taking a page fault for each one the
next instance touches. With PAGEMAP_SCAN (runtime/engine/pagemap_scan.py) it copies back only the
pages the guest wrote; without it ("K/noscan", LEPTON_PAGEMAP_SCAN=0) it memsets the first K bytes.
This runs the Python spin-sdk hello through RunningApp.handle with C concurrent callers, once per
setting in a fresh process, settings alternated round after round, and prints the medians of: CPU
time per request (user and system, from getrusage: less sensitive than wall clock to what else the
machine runs), page faults per request, requests/s, and after the run RSS and its anonymous
(private) part: the image pages a warm slot keeps mapped are shared page cache. Ratios are
against the first setting.

    python benchmarks/keep_resident_bench.py [--rounds 3] [--requests 600] [--concurrency 8] \
        [--settings 0,16,64,16/noscan]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WARMUP = 50


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / (1024 * 1024)


def rss_anon_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def measure(cache_dir: Path, concurrency: int, requests: int) -> dict[str, float]:
    """One process's figures (the engine, and so the setting, is fixed per process)."""
    from runtime import Runtime
    from runtime.testing import component, loaded_app
    from runtime.types import AppSettings, MiB
    from tests.support import fixtures
    from tests.support.runtime_helpers import read, request

    wasm = fixtures.build_python_app(ROOT / "benchmarks" / "apps" / "python_hello")
    runtime = Runtime(cache_dir)
    app = loaded_app([component("c", wasm)], name="hello")
    running = await runtime.load_app(app, AppSettings(timeout_s=30.0, memory_bytes=256 * MiB, max_body_bytes=MiB))
    gc.collect()
    gc.freeze()  # as the server does once apps are loaded

    async def one() -> None:
        response = await running.handle(request("/"))
        await read(response)
        assert response.status == 200, response.status

    for _ in range(WARMUP):
        await one()
    left = requests

    async def caller() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await one()

    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    runtime.close()
    return {
        "user_ms": (after.ru_utime - before.ru_utime) / requests * 1000,
        "sys_ms": (after.ru_stime - before.ru_stime) / requests * 1000,
        "faults": (after.ru_minflt - before.ru_minflt) / requests,
        "rps": requests / elapsed,
        "rss_mib": rss_mib(),
        "anon_mib": rss_anon_mib(),
    }


def run_child(setting: str, cache_dir: Path, concurrency: int, requests: int) -> dict[str, float]:
    mib, _, scan = setting.partition("/")
    env = dict(os.environ, LEPTON_KEEP_RESIDENT=mib, LEPTON_PAGEMAP_SCAN="0" if scan == "noscan" else "auto")
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--cache", str(cache_dir), "--concurrency", str(concurrency),
         "--requests", str(requests)],
        env=env, capture_output=True, text=True, timeout=600, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--settings", default="0,16,64,16/noscan",
                        help="LEPTON_KEEP_RESIDENT values to compare (MiB); '/noscan' without PAGEMAP_SCAN")
    parser.add_argument("--cache", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(measure(args.cache, args.concurrency, args.requests))))
        return

    settings = args.settings.split(",")
    cache_dir = args.cache or Path(tempfile.mkdtemp(prefix="lepton-keep-resident-"))
    run_child("0", cache_dir, 1, 10)  # compile into the cache outside the measurements
    results: dict[str, list[dict[str, float]]] = {mib: [] for mib in settings}
    for round_no in range(args.rounds):
        order = settings if round_no % 2 == 0 else list(reversed(settings))
        for mib in order:
            results[mib].append(run_child(mib, cache_dir, args.concurrency, args.requests))
    print(f"Python spin-sdk hello, {args.concurrency} concurrent callers, {args.requests} requests a run, "
          f"median of {args.rounds} alternated rounds (load average {os.getloadavg()[0]:.1f})")
    print(f"  {'keep resident':>16s} {'user ms/req':>11s} {'sys ms/req':>10s} {'cpu ms/req':>10s} {'ratio':>6s} "
          f"{'faults/req':>10s} {'req/s':>7s} {'ratio':>6s} {'RSS MiB':>8s} {'anon MiB':>8s}")
    base_cpu = base_rps = None
    for mib in settings:
        med = {key: statistics.median(r[key] for r in results[mib]) for key in results[mib][0]}
        cpu = med["user_ms"] + med["sys_ms"]
        base_cpu = base_cpu or cpu
        base_rps = base_rps or med["rps"]
        label = f"{mib.partition('/')[0]} MiB" + (" noscan" if mib.endswith("/noscan") else "")
        print(f"  {label:>16s} {med['user_ms']:11.2f} {med['sys_ms']:10.2f} {cpu:10.2f} {cpu / base_cpu:5.2f}x "
              f"{med['faults']:10.0f} {med['rps']:7.1f} {med['rps'] / base_rps:5.2f}x {med['rss_mib']:8.0f} "
              f"{med['anon_mib']:8.0f}")


if __name__ == "__main__":
    main()
