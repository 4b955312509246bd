"""lepton-router throughput and latency with wrk on loopback, against baselines measured in the same run.

    python benchmarks/router_bench.py [--duration 5] [--rounds 5] [--connections 16] [--apps 1000] [--only swap]

Reports medians of interleaved wrk runs (wrk -t1, bounded duration, after a warm-up):
  1. bare Quart hello on hypercorn vs lepton-router serving the WAT hello app: req/s, p99, ratio
     (lepton-router instantiates a fresh component instance per request, as Spin does);
  2. 1 vs N configured apps (the same request hits one app; the others only make the table big);
  3. p99 while routes.toml flips the app between two versions every second vs steady state, in
     alternated rounds (steady, swapping): each round's p50/p99 and ratio, and the median ratio;
  4. --workers 2 vs 1 worker (wrk shares the machine's cores with the server).
Targets: >= 50% of bare Quart; N apps cost <= 5%; p99 during swaps <= 2x steady;
workers 2 >= 1.3x.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import wasmtime

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # registry/ of this tree (the editable install may point at another)
HELLO_WAT = REPO / "tests" / "fixtures" / "wat" / "hello.wat"
HELLO_TEXT = '"Hello, Fermyon!\\0a"'


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int

    def line(self) -> str:
        return (f"{self.name:<38} {self.rps:>9.0f} req/s   p50 {self.p50_ms:>7.2f} ms   p99 {self.p99_ms:>7.2f} ms"
                f"   errors {self.errors}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if not match:
        raise ValueError(value)
    number, unit = float(match.group(1)), match.group(2)
    return number / 1000 if unit == "us" else number * 1000 if unit == "s" else number


def wrk(name: str, url: str, host: str, duration: float, connections: int) -> Result:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", "-H", f"Host: {host}", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"):
        match = re.search(pattern, out)
        if match:
            errors += sum(int(g) for g in match.groups())
    return Result(name, rps, p50, p99, errors)


def wait_http(url: str, host: str, timeout: float = 300, status: int = 200) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers={"host": host}, timeout=5).status_code == status:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer {status} within {timeout}s")


class Proc:
    def __init__(self, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                         env={**os.environ, **(env or {})})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


QUART_APP = textwrap.dedent(
    """
    import asyncio, sys
    from hypercorn.asyncio import serve
    from hypercorn.config import Config
    from quart import Quart

    app = Quart(__name__)

    @app.route("/", defaults={"path": ""})
    @app.route("/<path:path>")
    async def hello(path):
        return "Hello, Fermyon!\\n", 200, {"content-type": "text/plain"}

    config = Config()
    config.bind = [sys.argv[1]]
    config.accesslog = None
    asyncio.run(serve(app, config))
    """
)


def build_layouts(work: Path) -> dict[str, str]:
    """Two versions of the WAT hello app as oci-layout sources (no registry needed)."""
    from tests.support.registry_apps import wat_hello_layout

    text = HELLO_WAT.read_text()
    return {
        tag: wat_hello_layout(work, tag, wasmtime.wat2wasm(text.replace(HELLO_TEXT, f'"{message}\\0a"')))
        for tag, message in (("v1", "Hello, Fermyon!"), ("v2", "Hello, version2"))
    }


def routes_text(work: Path, source: str, extra_apps: int) -> str:
    lines = [f'[server]\ncache_dir = "{work / "cache"}"\nstate_dir = "{work / "state"}"\n',
             f'[apps.main]\nsource = "{source}"\nhosts = ["main.test"]\n']
    for i in range(extra_apps):
        lines.append(f'[apps.filler{i}]\nsource = "{source}"\nhosts = ["filler{i}.test"]\nprefix = "/f{i}"\n')
    return "\n".join(lines)


def rss_mib(pid: int) -> float:
    """Resident memory of a process (for --workers: the supervisor only)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def lepton(work: Path, routes: Path, port: int, workers: int = 1) -> Proc:
    cmd = [sys.executable, "-m", "router.cli", "serve", str(routes), "--listen", f"127.0.0.1:{port}",
           "--log-level", "WARNING"]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    return Proc(cmd, work / f"lepton-{port}.log")


def median_result(name: str, runs: list[Result]) -> Result:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    return Result(name, med([r.rps for r in runs]), med([r.p50_ms for r in runs]), med([r.p99_ms for r in runs]),
                  sum(r.errors for r in runs))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved runs per configuration (median; the 1,000-app target is 5%%, about the spread of one run)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--only", choices=("swap",), help="run one part alone (swap: the hot-swap rounds)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 1
    d, c = args.duration, args.connections

    with tempfile.TemporaryDirectory(prefix="router-bench-") as tmp:
        work = Path(tmp)
        sources = build_layouts(work)
        procs: list[Proc] = []
        try:
            # All servers run side by side (idle while another is measured); runs are interleaved
            # round by round so drift in machine load hits every configuration alike.
            (work / "quart_hello.py").write_text(QUART_APP)
            ports = {name: free_port() for name in ("quart", "one", "many", "workers")}
            servers = [("one", 0, 1)]
            if not args.only:
                procs.append(Proc([sys.executable, str(work / "quart_hello.py"), f"127.0.0.1:{ports['quart']}"],
                                  work / "quart.log"))
                servers += [("many", args.apps - 1, 1), ("workers", 0, 2)]
            for name, extra, workers in servers:
                routes = work / f"routes-{name}.toml"
                routes.write_text(routes_text(work, sources["v1"], extra))
                started = time.monotonic()
                procs.append(lepton(work, routes, ports[name], workers))
                ready = f"http://127.0.0.1:{ports[name]}/.well-known/lepton/ready"
                for _ in range(20 if workers > 1 else 1):  # fresh connections: every worker must be ready
                    wait_http(ready, "x", 900)
                print(f"(lepton-router {name}: {extra + 1} apps, {workers} worker(s), ready in "
                      f"{time.monotonic() - started:.1f}s, RSS {rss_mib(procs[-1].proc.pid):.0f} MiB)", flush=True)
            if not args.only:
                wait_http(f"http://127.0.0.1:{ports['quart']}/", "main.test", 60)

            labels = {
                "quart": "bare Quart hello (hypercorn, 1 worker)",
                "one": "lepton-router, 1 app",
                "many": f"lepton-router, {args.apps} apps",
                "workers": "lepton-router, --workers 2",
            }
            runs: dict[str, list[Result]] = {name: [] for name in labels}
            for _ in range(0 if args.only else args.rounds):
                for name, label in labels.items():
                    url = f"http://127.0.0.1:{ports[name]}/"
                    wrk(label, url, "main.test", 1, c)  # warm-up
                    result = wrk(label, url, "main.test", d, c)
                    print("  " + result.line(), flush=True)
                    runs[name].append(result)

            # Swaps: flip the app between v1 and v2 every second while wrk runs, against steady runs.
            routes = work / "routes-one.toml"
            url = f"http://127.0.0.1:{ports['one']}/"
            steady_runs: list[Result] = []
            swap_runs: list[Result] = []
            flips = 0
            print(f"\nhot swap: {args.rounds} alternated rounds (steady, then swapping every 1s), wrk -t1 -c{c} -d{d}s",
                  flush=True)
            wrk("lepton-router, warm-up", url, "main.test", 1, c)
            for round_no in range(1, args.rounds + 1):
                steady_runs.append(wrk("lepton-router, steady", url, "main.test", d, c))
                stop = threading.Event()

                def flipper(stop: threading.Event) -> None:
                    nonlocal flips
                    tag = "v2"
                    while not stop.wait(1.0):
                        write_atomic(routes, routes_text(work, sources[tag], 0))
                        flips += 1
                        tag = "v1" if tag == "v2" else "v2"

                thread = threading.Thread(target=flipper, args=(stop,), daemon=True)
                thread.start()
                swap_runs.append(wrk("lepton-router, swapping every 1s", url, "main.test", d, c))
                stop.set()
                thread.join()
                print(f"  round {round_no}: " + steady_runs[-1].line(), flush=True)
                print(f"  round {round_no}: " + swap_runs[-1].line(), flush=True)
                print(f"  round {round_no}: p99 swapping / steady {swap_runs[-1].p99_ms / steady_runs[-1].p99_ms:6.2f}   "
                      f"load average {os.getloadavg()[0]:.2f}", flush=True)
        finally:
            for proc in procs:
                proc.stop()

    steady = median_result("lepton-router, steady (swap baseline)", steady_runs)
    swapping = median_result(f"lepton-router, swapping ({flips} edits)", swap_runs)
    ratios = [s.p99_ms / b.p99_ms for s, b in zip(swap_runs, steady_runs, strict=True)]
    print(f"\nmedians of {args.rounds} interleaved runs, wrk -t1 -c{c} -d{d}s:")
    if args.only:
        for result in (steady, swapping):
            print("  " + result.line())
        print(f"p99 swapping / steady, per round:      {'  '.join(f'{r:.2f}' for r in ratios)}")
        print(f"p99 during swaps / steady p99, median of rounds: {statistics.median(ratios):6.2f}  (target <= 2.0)")
        print(f"non-2xx or socket errors across runs:  {steady.errors + swapping.errors}")
        return 0
    results = {name: median_result(label, runs[name]) for name, label in labels.items()}
    for result in (*results.values(), steady, swapping):
        print("  " + result.line())
    bare, one, many, two = results["quart"], results["one"], results["many"], results["workers"]
    print()
    print(f"lepton-router / bare Quart req/s:     {one.rps / bare.rps:6.2f}  (target >= 0.50)")
    print(f"p99 lepton-router / bare Quart:        {one.p99_ms / bare.p99_ms:6.2f}")
    print(f"{args.apps} apps / 1 app req/s:{'':<{max(0, 14 - len(str(args.apps)))}}{many.rps / one.rps:6.2f}  (target >= 0.95)")
    print(f"p99 swapping / steady, per round:      {'  '.join(f'{r:.2f}' for r in ratios)}")
    print(f"p99 during swaps / steady p99, median of rounds: {statistics.median(ratios):6.2f}  (target <= 2.0)")
    print(f"--workers 2 / 1 worker req/s:          {two.rps / one.rps:6.2f}  (target >= 1.3)")
    errors = sum(r.errors for r in (*results.values(), steady, swapping))
    print(f"non-2xx or socket errors across runs:  {errors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
