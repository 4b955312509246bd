"""What OpenTelemetry costs: lepton-router serving the WAT hello with telemetry off vs on (traces,
metrics and logs exported over OTLP/HTTP to a receiver on loopback), same run, wrk on loopback.

    python benchmarks/telemetry_bench.py [--duration 5] [--rounds 5] [--connections 16]

Two servers side by side, measured in interleaved rounds (medians). "on" exports with the
defaults (spans every 5 s or per 512; metrics every 60 s, flushed at exit) through each worker's
telemetry process (router/telemetry_export.py, at the lowest CPU priority); the receiver, a
separate process, decodes every export with opentelemetry-proto and counts the spans, so the
report says how many of the requests' spans reached it (a telemetry process starved of CPU drops).
Also reported: CPU per request of the server, its telemetry process and the receiver.
Target: on >= 0.90x the requests per second of off.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `benchmarks.`

from benchmarks.router_bench import (
    Proc,
    Result,
    build_layouts,
    free_port,
    median_result,
    routes_text,
    wait_http,
    wrk,
)

# A minimal OTLP/HTTP collector: decodes each export and counts what it holds.
RECEIVER = textwrap.dedent(
    """
    import json, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    counts = {"spans": 0, "trace_exports": 0, "metric_exports": 0, "log_exports": 0, "bytes": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            data = self.rfile.read(int(self.headers.get("content-length") or 0))
            counts["bytes"] += len(data)
            if self.path == "/v1/traces":
                request = ExportTraceServiceRequest.FromString(data)
                counts["spans"] += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
                counts["trace_exports"] += 1
            elif self.path == "/v1/metrics":
                ExportMetricsServiceRequest.FromString(data)
                counts["metric_exports"] += 1
            elif self.path == "/v1/logs":
                ExportLogsServiceRequest.FromString(data)
                counts["log_exports"] += 1
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_GET(self):
            body = json.dumps(counts).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The processes `pid` started (the worker's span exporter process, when telemetry is on)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError):
                pass
    return found


def lepton(work: Path, routes: Path, port: int, env: dict[str, str]) -> Proc:
    cmd = [sys.executable, "-m", "router.cli", "serve", str(routes), "--listen", f"127.0.0.1:{port}",
           "--log-level", "WARNING"]
    return Proc(cmd, work / f"lepton-{port}.log", env)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved runs per configuration (median)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--on-env", action="append", default=[], metavar="NAME=VALUE",
                        help="another variable for the telemetry-on server (e.g. OTEL_TRACES_SAMPLER=always_off)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 1
    d, c = args.duration, args.connections
    off_env = {"OTEL_SDK_DISABLED": "1"}  # whatever this shell has set: off is off

    with tempfile.TemporaryDirectory(prefix="telemetry-bench-") as tmp:
        work = Path(tmp)
        source = build_layouts(work)["v1"]
        (work / "receiver.py").write_text(RECEIVER)
        ports = {name: free_port() for name in ("receiver", "off", "on")}
        receiver_url = f"http://127.0.0.1:{ports['receiver']}"
        procs: list[Proc] = []
        runs: dict[str, list[Result]] = {"off": [], "on": []}
        requests = {"off": 0, "on": 0}
        cpu = {"off": 0.0, "on": 0.0, "receiver": 0.0, "exporter": 0.0}  # CPU seconds in the measured runs
        measured = {"off": 0, "on": 0}
        try:
            procs.append(Proc([sys.executable, str(work / "receiver.py"), str(ports["receiver"])], work / "receiver.log"))
            on_env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver_url, "OTEL_SDK_DISABLED": ""}
            on_env.update(item.split("=", 1) for item in args.on_env)
            envs = {"off": off_env, "on": on_env}
            for name, env in envs.items():
                routes = work / f"routes-{name}.toml"
                routes.write_text(routes_text(work, source, 0))
                procs.append(lepton(work, routes, ports[name], env))
                wait_http(f"http://127.0.0.1:{ports[name]}/.well-known/lepton/ready", "x", 300)
            wait_http(receiver_url, "x", 60)
            receiver_pid = procs[0].proc.pid
            server_pids = {"off": procs[1].proc.pid, "on": procs[2].proc.pid}

            labels = {"off": "telemetry off", "on": "telemetry on (OTLP/HTTP, loopback)"}
            for _ in range(args.rounds):
                for name, label in labels.items():
                    url = f"http://127.0.0.1:{ports[name]}/"
                    warm = wrk(label, url, "main.test", 1, c)  # warm-up
                    pid = server_pids[name]
                    exporters = children(pid)
                    before, receiver_before = cpu_seconds(pid), cpu_seconds(receiver_pid)
                    exporters_before = sum(cpu_seconds(p) for p in exporters)
                    result = wrk(label, url, "main.test", d, c)
                    cpu[name] += cpu_seconds(pid) - before
                    if name == "on":
                        cpu["receiver"] += cpu_seconds(receiver_pid) - receiver_before
                        cpu["exporter"] += sum(cpu_seconds(p) for p in exporters) - exporters_before
                    measured[name] += round(result.rps * d)
                    requests[name] += round(warm.rps * 1) + round(result.rps * d)
                    print("  " + result.line(), flush=True)
                    runs[name].append(result)
            on_proc = procs[-1]
            on_proc.stop()  # flushes what is still queued
            time.sleep(0.5)
            counts = httpx.get(receiver_url, timeout=10).json()
        finally:
            for proc in procs:
                proc.stop()

    off, on = median_result(labels["off"], runs["off"]), median_result(labels["on"], runs["on"])
    print(f"\nmedians of {args.rounds} interleaved runs, wrk -t1 -c{c} -d{d}s, WAT hello:")
    for result in (off, on):
        print("  " + result.line())
    print()
    print(f"telemetry on / off req/s:   {on.rps / off.rps:6.2f}  (target >= 0.90)")
    print(f"p99 on / off:               {on.p99_ms / off.p99_ms:6.2f}")
    per_request = {name: 1e6 * cpu[name] / max(1, measured[name]) for name in ("off", "on")}
    print(f"server CPU per request:     off {per_request['off']:.0f} us, on {per_request['on']:.0f} us "
          f"(+{per_request['on'] - per_request['off']:.0f} us); its telemetry process: "
          f"{1e6 * cpu['exporter'] / max(1, measured['on']):.0f} us; the receiver: "
          f"{1e6 * cpu['receiver'] / max(1, measured['on']):.0f} us")
    # Each request makes two spans (the server span and the wasm execution span).
    print(f"spans received: {counts['spans']} of about {2 * requests['on']} made "
          f"({counts['trace_exports']} trace exports, {counts['metric_exports']} metric exports, "
          f"{counts['bytes'] / 1e6:.1f} MB)")
    print(f"non-2xx or socket errors across runs: {off.errors + on.errors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
