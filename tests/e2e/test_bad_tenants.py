"""Bad tenants must cost only themselves: an app whose guests spin until their deadline and one
whose guests blow their memory limit, each hammered by 8 connections, once left a healthy app
on the same server with 0.05x of its throughput (its inline guests starved of a core by the
spinning guest threads). Full figures: benchmarks/tenants_bench.py."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from tests.support.server import RouterServer, echo_wasm, hello_wasm, push_app_to
from tests.support.tools import require_tool

SECONDS = 3
ABUSERS = 8  # connections per bad app
# Today's code keeps >= 0.3x on 2 cores (tenants_bench); the old code gave 0.05x. The bound
# here leaves room for a noisy shared machine while still failing the old behaviour.
MIN_RATIO = 0.15


def _wrk(url: str, host: str, seconds: float, connections: int) -> tuple[float, int]:
    """(requests/s, non-2xx + socket errors) of one wrk run."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s", "--timeout", "5s", "-H", f"Host: {host}", url],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"):
        if match := re.search(pattern, out):
            errors += sum(int(g) for g in match.groups())
    return rps, errors


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(key)


def test_spinning_and_memory_hungry_tenants_leave_a_healthy_app_its_share(  # type: ignore[no-untyped-def]
    registry, router_server, router_cache_dir: Path, tmp_path: Path
) -> None:
    require_tool("wrk", "apt-get install wrk")
    healthy = push_app_to(registry.host, "tenants/healthy:v1", hello_wasm("healthy"), tmp_path)
    guest = push_app_to(registry.host, "tenants/guest:v1", echo_wasm(), tmp_path)
    routes = tmp_path / "routes.toml"
    routes.write_text(
        f'[server]\ncache_dir = "{router_cache_dir}"\n'
        f'[apps.healthy]\nsource = "{healthy}"\ninsecure = true\nhosts = ["healthy.test"]\n'
        f'[apps.looper]\nsource = "{guest}"\ninsecure = true\nhosts = ["looper.test"]\ntimeout = "1s"\n'
        f'[apps.eater]\nsource = "{guest}"\ninsecure = true\nhosts = ["eater.test"]\nmemory = "64MiB"\n'
    )
    server: RouterServer = router_server(routes)
    server.wait_ready()
    assert server.proc is not None
    pid = server.proc.pid
    url = server.base_url + "/"
    _wrk(url, "healthy.test", 1, 8)  # warm: the healthy app proves itself cheap and runs inline
    rss_start = _status(pid, "VmRSS")

    alone, alone_errors = _wrk(url, "healthy.test", SECONDS, 8)
    abusers = [
        subprocess.Popen(
            ["wrk", "-t1", f"-c{ABUSERS}", f"-d{SECONDS + 3}s", "--timeout", "5s", "-H", f"Host: {host}",
             f"{server.base_url}{path}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for host, path in (("looper.test", "/loop"), ("eater.test", "/oom"))
    ]
    try:
        time.sleep(1.0)  # the bad apps' guests are running
        abused, abused_errors = _wrk(url, "healthy.test", SECONDS, 8)
    finally:
        for p in abusers:
            p.wait(timeout=60)

    assert alone_errors == 0 and abused_errors == 0
    assert abused >= MIN_RATIO * alone, f"healthy app: {abused:.0f} req/s under abuse vs {alone:.0f} alone"
    # Memory and threads come back: instances are freed as requests end, idle threads end.
    assert _status(pid, "VmRSS") - rss_start < 256 * 1024, "RSS grew by more than 256 MiB"
    threads_before = 16  # the loop, the epoch ticker, hypercorn's and watchfiles' threads, a few guests
    server.wait_for(lambda: _status(pid, "Threads") <= threads_before, 30, "idle guest threads to end")
    assert server.get("/", host="healthy.test").text.startswith("healthy")
    assert server.get("/oom", host="eater.test").status_code == 500  # the bad apps only cost themselves
