"""Pull time for a ~20 MB Spin app from a loopback docker-registry: cold vs cached.

Starts its own docker-registry on 127.0.0.1 (storage in a temp dir), pushes a 20 MB app (4 MB wasm
+ 16 x 1 MB files) with registry.push_app, then times, each over a few rounds (median):

* baseline   plain sequential GETs of every blob with requests (no verification, no disk writes
             beyond discarding): what the wire and the registry cost on this machine
* cold       load_app with an empty cache: download (concurrent), verify, materialise
* cached     load_app again: one manifest request, everything else from the cache
* pinned     load_app of the @sha256 reference: no network at all

Run: python3 benchmarks/registry_bench.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from registry import load_app, push_app
from tests.support.registry_apps import AppComponent, sized_module, write_local_app
from tests.support.registry_server import RegistryServer

MB = 1_000_000


def timed(fn: Callable[[], object], rounds: int, before: Callable[[], None] | None = None) -> list[float]:
    out = []
    for _ in range(rounds):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="lepton-registry-bench-") as tmp_name:
        tmp = Path(tmp_name)
        server = RegistryServer(tmp / "registry").start()
        try:
            files = {f"assets/blob{i:02d}.bin": os.urandom(MB) for i in range(16)}
            lockfile = write_local_app(tmp / "app", [AppComponent("web", sized_module(4 * MB, "bench"), files=files)])
            ref = f"{server.host}/bench/app20mb:v1"
            start = time.perf_counter()
            digest = push_app(lockfile, ref, insecure=True)
            push_s = time.perf_counter() - start

            manifest = requests.get(
                f"{server.url}/v2/bench/app20mb/manifests/v1",
                headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
                timeout=30,
            ).json()
            blobs = [manifest["config"], *manifest["layers"]]
            total = sum(b["size"] for b in blobs)

            def baseline() -> None:
                with requests.Session() as s:
                    for b in blobs:
                        r = s.get(f"{server.url}/v2/bench/app20mb/blobs/{b['digest']}", timeout=60)
                        r.raise_for_status()

            cache = tmp / "cache"

            def wipe() -> None:
                shutil.rmtree(cache, ignore_errors=True)

            base = timed(baseline, args.rounds)
            cold = timed(lambda: load_app(ref, cache_dir=cache, insecure=True), args.rounds, before=wipe)
            load_app(ref, cache_dir=cache, insecure=True)
            cached = timed(lambda: load_app(ref, cache_dir=cache, insecure=True), args.rounds)
            pinned_ref = f"{server.host}/bench/app20mb@{digest}"
            pinned = timed(lambda: load_app(pinned_ref, cache_dir=cache, insecure=True), args.rounds)
        finally:
            server.stop()

    def fmt(xs: list[float]) -> str:
        return f"median {statistics.median(xs) * 1000:8.1f} ms  (min {min(xs) * 1000:.1f}, max {max(xs) * 1000:.1f})"

    print(f"app: {total / MB:.1f} MB in {len(blobs)} blobs; push took {push_s * 1000:.0f} ms; rounds={args.rounds}")
    print(f"baseline raw GETs : {fmt(base)}")
    print(f"cold pull         : {fmt(cold)}  = {statistics.median(cold) / statistics.median(base):.2f}x baseline, "
          f"{total / MB / statistics.median(cold):.0f} MB/s")
    print(f"cached pull (tag) : {fmt(cached)}  = {statistics.median(cold) / statistics.median(cached):.0f}x faster than cold")
    print(f"cached pull (@sha): {fmt(pinned)}")
    print(json.dumps({
        "bytes": total, "baseline_s": statistics.median(base), "cold_s": statistics.median(cold),
        "cached_tag_s": statistics.median(cached), "cached_digest_s": statistics.median(pinned),
    }))


if __name__ == "__main__":
    main()
