"""`lepton-router serve` from two checkouts side by side, on the same .wasm, one run.

    python benchmarks/trees_bench.py BASELINE_TREE [OTHER_TREE] [--guest py] [--modes fresh,reuse]
                                     [--connections 1,16] [--rounds 3] [--duration 4]
                                     [--env INDEX:NAME=VALUE ...]

Starts one `lepton-router serve` per tree (OTHER_TREE defaults to this checkout), each run from its
own tree (its working directory and PYTHONPATH), both serving the same guest from one oci-layout:
an app with a fresh instance per request (`fresh.test`) and one with max_instance_reuse_count =
128 (`reuse.test`). Guests are peer_bench's: `py` (the Python spin-sdk hello, default), `wat`
(WAT hello) or `js` (JS echo; reuse cannot serve it). `--env 1:LEPTON_EVENT_LOOP=asyncio` sets an
environment variable for one server only (0 is the baseline), so one tree can also be compared
with itself under two settings.

A measurement: 1 s of sequential keep-alive requests, then wrk -t1 -cN -d`--duration`s; rounds
alternate over modes, connection counts and the two servers; medians are printed. Besides wrk's
req/s and p99, each run reads the server process's CPU time (all threads, user and system) and its
threads' context switches from /proc before and after, and divides them by the requests served:
on a shared machine CPU per request is steadier than req/s. (Context switches are read from the
threads alive at each reading: a worker thread that ends idle during a run takes its count with
it, which can make that run's figure low or negative.)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.peer_bench import GUESTS, REUSE_COUNT, _push, warm_up  # noqa: E402
from benchmarks.router_bench import free_port, wait_http, wrk  # noqa: E402
from benchmarks.telemetry_bench import cpu_seconds  # noqa: E402

MODES = ("fresh", "reuse")


@dataclass(frozen=True)
class Run:
    rps: float
    cpu_ms: float  # server process CPU per request
    switches: float  # context switches of the server's threads per request
    p99_ms: float
    errors: int


def context_switches(pid: int) -> int:
    """Voluntary and involuntary, summed over the threads alive now (threads that ended are gone)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:
            continue
        total += sum(int(n) for n in re.findall(r"ctxt_switches:\s+(\d+)", status))
    return total


def routes(work: Path, source: str, index: int) -> Path:
    path = work / f"routes-{index}.toml"
    path.write_text(
        f'[server]\ncache_dir = "{work / "cache"}"\nstate_dir = "{work / f"state-{index}"}"\n'
        f'\n[apps.fresh]\nsource = "{source}"\nhosts = ["fresh.test"]\n'
        f'\n[apps.reuse]\nsource = "{source}"\nhosts = ["reuse.test"]\nmax_instance_reuse_count = {REUSE_COUNT}\n'
    )
    return path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("baseline", type=Path, help="the checkout to compare against (e.g. a worktree of main)")
    parser.add_argument("other", type=Path, nargs="?", default=ROOT, help="the checkout measured (default: this one)")
    parser.add_argument("--guest", choices=[g.name for g in GUESTS], default="py")
    parser.add_argument("--modes", default="fresh,reuse", help="fresh, reuse or both")
    parser.add_argument("--connections", default="1,16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--env", action="append", default=[], metavar="INDEX:NAME=VALUE",
                        help="an environment variable for server 0 (baseline) or 1 (other) only")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if any(m not in MODES for m in modes):
        parser.error(f"--modes: {', '.join(MODES)}")
    if not shutil.which("wrk"):
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 1
    connections = [int(c) for c in args.connections.split(",")]
    trees = [args.baseline.resolve(), args.other.resolve()]
    envs: list[dict[str, str]] = [{}, {}]
    for item in args.env:
        index, _, assignment = item.partition(":")
        name, _, value = assignment.partition("=")
        if index not in ("0", "1") or not name:
            parser.error(f"--env {item!r}: expected 0:NAME=VALUE or 1:NAME=VALUE")
        envs[int(index)][name] = value
    guest = next(g for g in GUESTS if g.name == args.guest)

    with tempfile.TemporaryDirectory(prefix="trees-bench-") as tmp:
        work = Path(tmp)
        source = _push(work, guest, guest.build(work))
        servers: list[tuple[subprocess.Popen[bytes], str]] = []
        try:
            for index, tree in enumerate(trees):
                port = free_port()
                env = {**os.environ, "PYTHONPATH": str(tree), **envs[index]}
                with (work / f"server-{index}.log").open("wb") as log:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "router.cli", "serve", str(routes(work, source, index)),
                         "--listen", f"127.0.0.1:{port}", "--log-level", "WARNING"],
                        cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)
                servers.append((proc, f"http://127.0.0.1:{port}/"))
            for _, url in servers:
                wait_http(url + ".well-known/lepton/ready", "x", 900)
            for index, tree in enumerate(trees):
                extra = " ".join(f"{k}={v}" for k, v in envs[index].items())
                print(f"[{index}] {tree} {extra}".rstrip(), flush=True)

            runs: dict[tuple[str, int, int], list[Run]] = {}
            for round_no in range(1, args.rounds + 1):
                for mode in modes:
                    for c in connections:
                        for index, (proc, url) in enumerate(servers):
                            host = f"{mode}.test"
                            warm_up(url, host, 1.0)
                            cpu, switches, started = cpu_seconds(proc.pid), context_switches(proc.pid), time.monotonic()
                            result = wrk(f"{mode} c{c} [{index}]", url, host, args.duration, c)
                            requests = max(1.0, result.rps * (time.monotonic() - started))
                            run = Run(result.rps, (cpu_seconds(proc.pid) - cpu) / requests * 1000,
                                      (context_switches(proc.pid) - switches) / requests, result.p99_ms, result.errors)
                            runs.setdefault((mode, c, index), []).append(run)
                            print(f"round {round_no}: {mode} c{c} [{index}] {run.rps:7.1f} req/s  cpu/req {run.cpu_ms:.2f} ms"
                                  f"  switches/req {run.switches:5.1f}  p99 {run.p99_ms:6.1f} ms  errors {run.errors}"
                                  f"  load {os.getloadavg()[0]:.2f}", flush=True)
        finally:
            for proc, _ in servers:
                proc.terminate()
                proc.wait(timeout=30)

    def med(key: tuple[str, int, int], field: str) -> float:
        return statistics.median(getattr(r, field) for r in runs[key])

    print(f"\nmedians of {args.rounds} alternating rounds, wrk -t1 -d{args.duration}s ({guest.label}):")
    for mode in modes:
        for c in connections:
            for index in (0, 1):
                key = (mode, c, index)
                print(f"  {mode} c{c:<3} [{index}] {med(key, 'rps'):7.1f} req/s  cpu/req {med(key, 'cpu_ms'):.2f} ms"
                      f"  switches/req {med(key, 'switches'):5.1f}  p99 {med(key, 'p99_ms'):6.1f} ms")
    print("\n[1] / [0]:")
    for mode in modes:
        for c in connections:
            a, b = (mode, c, 1), (mode, c, 0)
            print(f"  {mode} c{c:<3} req/s {med(a, 'rps') / med(b, 'rps'):5.2f}   cpu/req {med(a, 'cpu_ms') / med(b, 'cpu_ms'):5.2f}")
    if len(connections) > 1:
        hi, lo = connections[-1], connections[0]
        print(f"\nc{hi} / c{lo}, each server:")
        for mode in modes:
            for index in (0, 1):
                print(f"  {mode} [{index}] req/s {med((mode, hi, index), 'rps') / med((mode, lo, index), 'rps'):5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
