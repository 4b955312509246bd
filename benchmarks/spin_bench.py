"""Spin host APIs benchmark: what a host call costs a real Python spin-sdk app, one run.

Baseline, measured in the same run: the same app answering a route that calls no host API
(`/nothing` -> 404 "no route" from the guest itself). Then variables.get, key-value get and
set (SQLite under a temp state dir), spin:sqlite execute (3 statements), and an outbound GET to
a loopback upstream. Requests go through RunningApp.handle (no HTTP server), one at a time.

    python benchmarks/spin_bench.py [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry.locked import Variable  # noqa: E402
from runtime import Runtime  # noqa: E402
from runtime.testing import component, loaded_app  # noqa: E402
from runtime.types import AppSettings, MiB  # noqa: E402
from tests.support.fixtures import FIXTURES_DIR, build_python_app, cache_root  # noqa: E402
from tests.support.runtime_helpers import read, request  # noqa: E402
from tests.support.upstream import Upstream  # noqa: E402


async def timed(running: object, n: int, path: str, **kwargs: object) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        resp = await running.handle(request(path, **kwargs))  # type: ignore[attr-defined]
        await read(resp)
        times.append(time.perf_counter() - start)
        assert resp.status < 500, (path, resp.status)
    return times


async def main(n: int) -> None:
    wasm = build_python_app(FIXTURES_DIR / "spin_py_kv")
    upstream = Upstream()
    rt = Runtime(cache_root() / "runtime-spin")
    try:
        with tempfile.TemporaryDirectory() as state:
            app = loaded_app(
                component(
                    "web",
                    wasm,
                    config={"greeting": "{{ greeting }}"},
                    metadata={
                        "key_value_stores": ["default"],
                        "databases": ["default"],
                        "allowed_outbound_hosts": [f"http://127.0.0.1:{upstream.port}"],
                    },
                ),
                name="bench",
                variables={"greeting": Variable(default="hello")},
            )
            running = await rt.load_app(
                app, AppSettings(timeout_s=30.0, memory_bytes=256 * MiB, state_dir=Path(state))
            )
            await timed(running, 20, "/nothing")  # warm up (first instantiations, page cache)
            await timed(running, 1, "/kv/default/k", method="PUT", body=b"v" * 100)
            cases = [
                ("baseline: guest-only 404", "/nothing", {}),
                ("variables.get", "/var/greeting", {}),
                ("key-value get (100 B)", "/kv/default/k", {}),
                ("key-value set (100 B)", "/kv/default/k", {"method": "PUT", "body": b"v" * 100}),
                ("sqlite: create + insert + count", "/sql", {}),
                ("outbound GET (loopback)", "/out", {"query": f"url=http://127.0.0.1:{upstream.port}/b"}),
            ]
            base = None
            print(f"{n} sequential requests per case (RunningApp.handle, Python spin-sdk 3.4.1 app)")
            print(f"{'case':34} {'median ms':>10} {'p90 ms':>8} {'vs baseline':>12}")
            for label, path, kwargs in cases:
                times = sorted(await timed(running, n, path, **kwargs))
                median = statistics.median(times) * 1000
                p90 = times[int(len(times) * 0.9) - 1] * 1000
                base = median if base is None else base
                print(f"{label:34} {median:10.2f} {p90:8.2f} {median - base:+11.2f}")
    finally:
        rt.close()
        upstream.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    asyncio.run(main(parser.parse_args().requests))
