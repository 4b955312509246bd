"""lepton-router vs a peer, `jco serve` (npm @bytecodealliance/jco), on the same .wasm files, one run.

    python benchmarks/peer_bench.py [--duration 5] [--rounds 5] [--warmup 1] [--quick]
                                    [--workers N|auto] [--guests wat,py,js,jsw]

`--workers` runs lepton-router with that many worker processes (`auto`: one per CPU, as
`workers = "auto"` in routes.toml); the default is one, the figures the targets were set on. jco
serve is one process whatever the machine. `--guests` measures only the guests named.

Guests (each one .wasm file, served unchanged by both servers):
  wat-hello  tests/fixtures/wat/hello.wat (wasmtime.wat2wasm);
  py-hello   benchmarks/apps/python_hello, spin-sdk built by componentize-py for the
             `wasi:http/proxy@0.2.0` world (a spin-http build imports Spin interfaces jco has not);
  js-echo    tests/fixtures/js_echo (@spinframework/build-tools j2w), GET / (JSON echo), answering
             through addEventListener("fetch"): StarlingMonkey's FetchEvent answers one request per
             instance (StarlingMonkey #247), so jco's shared instance hangs on its second request
             and lepton-router runs it fresh even as "lepton reuse";
  jsw-echo   tests/fixtures/js_wasi_echo, the same echo built the same way with its handler written
             against wasi:http (`export const incomingHandler`): one instance answers any number of
             requests, in jco's shared instance and in lepton-router's reuse.
Servers:
  lepton fresh   `lepton-router serve`, a fresh instance per request (the default);
  lepton reuse   the same process, another app on the same .wasm with max_instance_reuse_count = 128;
  jco shared     `jco serve`: one instance for every request;
  jco instance   `jco serve --isolate-requests instance`: a fresh instance per request.
One lepton-router process serves every guest (an app per guest and mode, told apart by Host). jco
is started afresh for every measurement: its shared instance dies for good (the whole node process
exits) when a Python guest traps on a client that hangs up mid-request, which wrk does when it
stops. Before the rounds, every server and guest answers two sequential requests; one that cannot
is reported with the reason and left out.

A measurement: start (jco only), `--warmup` seconds of sequential keep-alive requests (complete
ones: they never hang up mid-request), then wrk -t1 -cN -d`--duration`s at N = 1 and 16. Rounds
alternate over every guest, server and N; medians are printed. wrk's socket errors include its
2 s timeouts (counted in req/s, left out of the latency figures).
Targets (issue 13): Python hello fresh c16/c1 >= 1.0; Python hello fresh / jco shared >= 0.6;
Python hello reuse / jco shared >= 1.2; JS echo reuse / jco shared >= 1.2 (on jsw-echo, the JS echo
an instance of which can be shared); WAT hello (fresh) / jco shared >= 1.2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import wasmtime

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.router_bench import (  # noqa: E402
    HELLO_WAT,
    Result,
    free_port,
    lepton,
    median_result,
    wait_http,
    wrk,
)
from tests.support.fixtures import NODE_MODULES, build_js_echo, build_js_wasi_echo, build_python_app  # noqa: E402
from tests.support.registry_apps import AppComponent, write_local_app  # noqa: E402

JCO = NODE_MODULES / ".bin" / "jco"
PYTHON_HELLO = ROOT / "benchmarks" / "apps" / "python_hello"
PROXY_WORLD = "wasi:http/proxy@0.2.0"
REUSE_COUNT = 128
CONNECTIONS = (1, 16)
LEPTON_MODES = ("lepton fresh", "lepton reuse")
JCO_MODES: dict[str, list[str]] = {"jco shared": [], "jco instance": ["--isolate-requests", "instance"]}
SERVERS = (*LEPTON_MODES, *JCO_MODES)


@dataclass(frozen=True)
class Guest:
    name: str
    label: str
    build: Callable[[Path], Path]
    body: bytes  # what a 200 answer contains


def _wat_hello(work: Path) -> Path:
    wasm = work / "wat-hello.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(HELLO_WAT.read_text()))
    return wasm


GUESTS = (
    Guest("wat", "WAT hello", _wat_hello, b"Hello, Fermyon!"),
    Guest("py", "Python hello", lambda _: build_python_app(PYTHON_HELLO, world=PROXY_WORLD), b"Hello from Python!"),
    Guest("js", "JS echo", lambda _: build_js_echo(), b'"method":"GET"'),
    Guest("jsw", "JS echo (wasi:http handler)", lambda _: build_js_wasi_echo(), b'"method":"GET"'),
)


# --------------------------------------------------------------------------------------------
# Servers


def _push(work: Path, guest: Guest, wasm: Path) -> str:
    """The .wasm as a one-component Spin app in an oci-layout (no registry needed)."""
    import registry

    lock = write_local_app(work / f"app-{guest.name}", [AppComponent(id=guest.name, wasm=wasm.read_bytes())],
                           name=guest.name)
    source = f"oci-layout:{work / 'layout'}:{guest.name}"
    registry.push_app(lock, source)
    return source


def tail(log: Path, lines: int = 2) -> str:
    """The last lines of a server's log, on one line."""
    text = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    interesting = [line.strip() for line in text if line.strip() and "Server listening" not in line]
    return " | ".join(interesting[-lines:]) or "(nothing logged)"


def last_error(log: Path) -> str:
    """The last line of a log that names an error (node's uncaught exception), else its last line."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "Error:" in line or "panicked" in line]
    return (errors or lines or ["(nothing logged)"])[-1]


def _host(guest: Guest, server: str) -> str:
    return f"{guest.name}-{server.split()[-1]}.test"


def _routes(work: Path, sources: dict[str, str]) -> str:
    text = f'[server]\ncache_dir = "{work / "cache"}"\nstate_dir = "{work / "state"}"\n'
    for guest in GUESTS:
        if guest.name not in sources:
            continue
        for server in LEPTON_MODES:
            app = _host(guest, server).removesuffix(".test")
            text += f'\n[apps.{app}]\nsource = "{sources[guest.name]}"\nhosts = ["{_host(guest, server)}"]\n'
            if server == "lepton reuse":
                text += f"max_instance_reuse_count = {REUSE_COUNT}\n"
    return text


class Jco:
    """`jco serve` in a process group of its own: it transpiles, then runs the component in a child node."""

    def __init__(self, wasm: Path, mode: str, port: int, work: Path) -> None:
        self.log = work / f"jco-{wasm.stem}-{mode.split()[-1]}-{port}.log"
        self.out = work / f"jco-out-{port}"  # the transpiled component (jco's own temp dir would stay on a kill)
        cmd = [str(JCO), "serve", "--port", str(port), "--host", "127.0.0.1",
               "--jco-dir", str(self.out), *JCO_MODES[mode], str(wasm)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=work,
                                         start_new_session=True)

    def _group_alive(self) -> bool:
        self.proc.poll()  # reap the leader, or the group never looks empty
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL after 10 s; returns once every process of it is gone."""
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            if not self._group_alive():
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            deadline = time.monotonic() + grace
            while self._group_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        self.proc.wait(timeout=10)
        shutil.rmtree(self.out, ignore_errors=True)


@contextmanager
def jco(wasm: Path, mode: str, work: Path, timeout: float) -> Iterator[tuple[str, Jco]]:
    """A fresh `jco serve` of `wasm`, once it accepts connections (no request is sent before yours)."""
    port = free_port()
    server = Jco(wasm, mode, port, work)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.proc.poll() is not None:
                raise RuntimeError(f"jco serve exited with {server.proc.returncode}: {tail(server.log)}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jco serve did not listen within {timeout:g}s: {tail(server.log)}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/", server
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------
# Measuring


def check(url: str, host: str, guest: Guest, requests: int = 2) -> str | None:
    """None if `requests` sequential requests on one connection all answer 200 with the guest's body."""
    with httpx.Client(headers={"host": host}, timeout=5) as client:
        for i in range(requests):
            try:
                response = client.get(url)
            except httpx.HTTPError as exc:
                return f"request {i + 1}: {type(exc).__name__} {exc}".strip()
            if response.status_code != 200 or guest.body not in response.content:
                return f"request {i + 1}: {response.status_code} {response.content[:80]!r}"
    return None


def warm_up(url: str, host: str, seconds: float) -> None:
    """Sequential complete requests on one connection for `seconds` (at least one)."""
    deadline = time.monotonic() + seconds
    with httpx.Client(headers={"host": host}, timeout=10) as client:
        while True:
            client.get(url)
            if time.monotonic() >= deadline:
                return


def ratio(a: Result | None, b: Result | None) -> str:
    return f"{a.rps / b.rps:6.2f}" if a and b and b.rps else "   n/a"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (median)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of sequential requests before each run")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds of 2 s runs, 0.5 s warm-up")
    parser.add_argument("--workers", default="1", help="lepton-router worker processes: a number or auto (one per CPU)")
    parser.add_argument("--guests", default="wat,py,js,jsw", help="comma-separated guests to measure (wat, py, js, jsw)")
    args = parser.parse_args()
    workers = (os.cpu_count() or 1) if args.workers == "auto" else int(args.workers)
    wanted = set(args.guests.split(","))
    if unknown := wanted - {guest.name for guest in GUESTS}:
        parser.error(f"--guests: unknown {', '.join(sorted(unknown))} (wat, py, js, jsw)")
    guests = [guest for guest in GUESTS if guest.name in wanted]
    if args.quick:
        args.duration, args.rounds, args.warmup = 2, 2, 0.5
    for tool, hint in (("wrk", "apt-get install wrk"), ("node", "apt-get install nodejs npm"),
                       (str(JCO), "npm ci in tests/fixtures")):
        if not shutil.which(tool):
            print(f"{tool} not found ({hint})", file=sys.stderr)
            return 1
    jco_version = subprocess.run([str(JCO), "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
    print(f"jco {jco_version}, node {subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()}; "
          f"lepton-router with {workers} worker process{'es' if workers > 1 else ''}")

    with tempfile.TemporaryDirectory(prefix="peer-bench-") as tmp:
        work = Path(tmp)
        wasm: dict[str, Path] = {}
        sources: dict[str, str] = {}
        for guest in guests:
            try:
                wasm[guest.name] = guest.build(work)
                sources[guest.name] = _push(work, guest, wasm[guest.name])
                print(f"{guest.label}: {wasm[guest.name].stat().st_size / 1e6:.1f} MB .wasm", flush=True)
            except Exception as exc:  # a guest that cannot be built is left out
                print(f"{guest.label}: cannot build, left out: {exc}", flush=True)

        routes = work / "routes.toml"
        routes.write_text(_routes(work, sources))
        port = free_port()
        base = f"http://127.0.0.1:{port}/"
        started = time.monotonic()
        server = lepton(work, routes, port, workers)
        try:
            wait_http(base + ".well-known/lepton/ready", "x", 900)
            print(f"lepton-router ready in {time.monotonic() - started:.1f}s (compiling every guest)", flush=True)

            # Which server can run which guest: two sequential requests, the second on the same instance
            # for jco shared and lepton reuse.
            cases: list[tuple[Guest, str]] = []
            left_out: dict[tuple[str, str], str] = {}  # (guest, server) that failed the check: why
            for guest in guests:
                if guest.name not in wasm:
                    continue
                for mode in SERVERS:
                    if mode in LEPTON_MODES:
                        problem = check(base, _host(guest, mode), guest)
                        if problem:
                            problem += f"; lepton-router log: {tail(server.log)}"
                    else:
                        try:
                            with jco(wasm[guest.name], mode, work, 120) as (url, proc):
                                problem = check(url, "localhost", guest)
                                if problem:
                                    problem += f"; jco log: {tail(proc.log)}"
                        except (RuntimeError, OSError) as exc:
                            problem = f"{type(exc).__name__}: {exc}"
                    if problem:
                        print(f"  {guest.label} on {mode}: cannot run it, left out: {problem}", flush=True)
                        left_out[(guest.name, mode)] = problem
                    else:
                        cases.append((guest, mode))

            runs: dict[tuple[str, str, int], list[Result]] = {}
            jco_exits: dict[tuple[str, str, int], str] = {}  # jco gone once wrk stopped: its last log line
            for round_no in range(1, args.rounds + 1):
                print(f"round {round_no}/{args.rounds}", flush=True)
                for guest, mode in cases:
                    for c in CONNECTIONS:
                        name = f"{guest.label}, {mode}, c{c}"
                        try:
                            if mode in LEPTON_MODES:
                                host = _host(guest, mode)
                                warm_up(base, host, args.warmup)
                                result = wrk(name, base, host, args.duration, c)
                            else:
                                with jco(wasm[guest.name], mode, work, 120) as (url, proc):
                                    warm_up(url, "localhost", args.warmup)
                                    result = wrk(name, url, "localhost", args.duration, c)
                                    time.sleep(0.5)  # a guest that traps on wrk's hang-ups takes jco down now
                                    if proc.proc.poll() is not None:
                                        jco_exits[(guest.name, mode, c)] = last_error(proc.log)
                        except (RuntimeError, OSError, httpx.HTTPError, subprocess.SubprocessError) as exc:
                            # one failed run (a server that would not start, wrk failing) is reported, not fatal
                            print(f"  {name}: failed, left out of this round: {type(exc).__name__}: {exc}", flush=True)
                            continue
                        print("  " + result.line(), flush=True)
                        runs.setdefault((guest.name, mode, c), []).append(result)
        finally:
            server.stop()

    med = {key: median_result(values[0].name, values) for key, values in runs.items()}
    print(f"\nmedians of {args.rounds} alternating rounds, wrk -t1 -d{args.duration}s, "
          f"{args.warmup:g}s sequential warm-up before each run:")
    for case, result in med.items():
        missing = f"   ({len(runs[case])} of {args.rounds} runs)" if len(runs[case]) < args.rounds else ""
        print("  " + result.line() + missing)

    def get(guest: str, mode: str, c: int) -> Result | None:
        return med.get((guest, mode, c))

    def show(label: str, value: str, note: str = "") -> None:
        print(f"  {label:<46}{value}{note}")

    print("\nreq/s ratios, every lepton-router mode against every jco mode, at each N:")
    for guest in GUESTS:
        for c in CONNECTIONS:
            for mode in LEPTON_MODES:
                for peer in JCO_MODES:
                    show(f"{guest.label} c{c}: {mode} / {peer}", ratio(get(guest.name, mode, c), get(guest.name, peer, c)))
    print("\nreq/s ratios, 16 connections / 1, each server:")
    for guest in GUESTS:
        for mode in SERVERS:
            show(f"{guest.label}: {mode} c16 / c1", ratio(get(guest.name, mode, 16), get(guest.name, mode, 1)))

    print("\ntargets (req/s ratios):")
    for label, (key, mode, peer, target) in {
        "Python hello fresh / jco shared": ("py", "lepton fresh", "jco shared", 0.6),
        "Python hello reuse / jco shared": ("py", "lepton reuse", "jco shared", 1.2),
        "JS echo (wasi:http handler) reuse / jco shared": ("jsw", "lepton reuse", "jco shared", 1.2),
        "WAT hello fresh / jco shared": ("wat", "lepton fresh", "jco shared", 1.2),
    }.items():
        why = "; ".join(f"{server} cannot run it: {left_out[(key, server)][:160]}"
                        for server in (mode, peer) if (key, server) in left_out)
        for c in CONNECTIONS:
            show(f"{label}, c{c}", ratio(get(key, mode, c), get(key, peer, c)),
                 f"  (target >= {target})" + (f"  [{why}]" if why else ""))
    show("Python hello fresh c16 / c1", ratio(get("py", "lepton fresh", 16), get("py", "lepton fresh", 1)),
         "  (target >= 1.0)")
    if jco_exits:
        print("\njco serve exited after wrk stopped (it hangs up on requests in flight) in at least one run of:")
        for (key, mode, c), line in jco_exits.items():
            print(f"  {next(g.label for g in GUESTS if g.name == key)}, {mode}, c{c}: {line}")
    errors = sum(r.errors for r in med.values())
    print(f"non-2xx or socket errors across runs (timeouts included): {errors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
