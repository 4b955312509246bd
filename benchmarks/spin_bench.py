"""Spin host APIs benchmark: what a host call costs a real Python spin-sdk app, one run.

Baseline, measured in the same run: the same app answering a route that calls no host API
(`/nothing` -> 404 "no route" from the guest itself). Then variables.get, key-value get and
set (SQLite under a temp state dir), spin:sqlite execute (3 statements), and an outbound GET to
a loopback upstream. Requests go through RunningApp.handle (no HTTP server), one at a time.

Outbound databases (tests/fixtures/spin_py_db, real redis-server, PostgreSQL and MariaDB started
on loopback as in the tests): Redis get, PostgreSQL and MySQL one-row selects, each an
open + call + drop by the guest on a warm pooled connection. Baseline: the same app's `/noop`
with the same query string (the guest parses the same request), same run. Each is also compared
with the same call from a plain Python client (redis-py, psycopg, mysqlclient) on one open
connection in this process, measured in the same iterations right after a request: `call / plain` is the call's added time (the request's median minus the no-call
median) over the plain client's median, against the issue's target of 2x. Several rounds, each
alternating the order of the no-call and the call request; figures are medians over the rounds,
with the spread of the per-round ratios, and the load average is printed (the machine may be
shared). Then the host's side alone (no wasm), interleaved with the plain client in a hot loop.

    python benchmarks/spin_bench.py [--requests N] [--rounds R] [--only host-apis|databases]
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
from tests.support.db_apps import db_wasm  # noqa: E402
from tests.support.db_servers import MariaDbServer, PostgresServer, RedisServer  # noqa: E402
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


class HostTimer:
    """Adds up the time spent inside the database capabilities' host functions (open, calls,
    drop), to split a call's cost between this host and the guest (SDK code in wasm, values
    crossing the component boundary). Wraps the functions as linked, before the app loads."""

    def __init__(self) -> None:
        self.total = 0.0
        self.open = 0.0  # of which in `open`
        self.drop = 0.0  # of which in the connection's drop
        self.values = 0.0  # not in `total`: their arguments lifted and results lowered (WIT values)
        # While set, the functions answer without a database: `open` with a handle to nothing,
        # the call with its own last real answer. What is left of a call then is the guest and
        # the crossings: the least a call can cost, whatever this host's functions do.
        self.canned = False

    def reset(self) -> None:
        self.total = self.open = self.drop = self.values = 0.0

    def install(self, *capabilities: type) -> None:
        from wasmtime.component import _linker

        from runtime.core.contract import InterfaceImpl
        from runtime.engine.patches import host_calls

        # Every component host call goes through host_calls._host_call (lift, call, lower): its
        # time for the database functions, less theirs, is their values' conversion.
        host_call = host_calls._host_call

        def timed_host_call(idx: int, *args: object) -> None:
            if not getattr(_linker.FUNCTIONS.get(idx), "bench_timed", False):
                return host_call(idx, *args)  # type: ignore[arg-type]
            start, before = time.perf_counter(), self.total
            try:
                return host_call(idx, *args)  # type: ignore[arg-type]
            finally:
                self.values += time.perf_counter() - start - (self.total - before)

        host_calls._host_call = timed_host_call  # type: ignore[assignment]

        for cls in capabilities:
            original = cls.implement

            def implement(cap: object, interface: str, version: str | None, _orig: object = original) -> InterfaceImpl:
                impl = _orig(cap, interface, version)  # type: ignore[operator]
                type_id = next(iter(impl.resources.values()))[0] if impl.resources else None
                return InterfaceImpl(
                    resources={k: (tid, self._wrap(drop, "drop")) for k, (tid, drop) in impl.resources.items()},
                    funcs={
                        k: self._wrap(f, "open" if k.endswith(".open") else "", type_id)
                        for k, f in impl.funcs.items()
                    },
                )

            cls.implement = implement  # type: ignore[method-assign]

    def _wrap(self, fn: object, part: str, type_id: int | None = None) -> object:
        last: list[object] = []  # the function's last real answer

        def timed_call(*args: object) -> object:
            if self.canned and part != "drop":
                return canned(*args)
            start = time.perf_counter()
            try:
                answer = fn(*args)  # type: ignore[operator]
                last[:] = [answer]
                return answer
            finally:
                spent = time.perf_counter() - start
                self.total += spent
                if part:
                    setattr(self, part, getattr(self, part) + spent)

        def canned(store: object, *args: object) -> object:
            from wasmtime.component import ResourceAny

            from runtime.capabilities.outbound_db import guest
            from runtime.capabilities.support.wit import ok
            from runtime.core.values import own, rep

            if part == "open":
                assert type_id is not None
                return ok(own(guest.hold(_Nothing()), type_id))
            for arg in args:
                if isinstance(arg, ResourceAny):
                    rep(store, arg)  # (a borrowed handle must be taken back before returning)
            return last[0]

        timed_call.bench_timed = True  # type: ignore[attr-defined]
        return timed_call


class _Nothing:
    """The handle a canned `open` gives out (see HostTimer.canned)."""

    def release(self) -> None:
        pass


def host_path(running: object, redis_url: str, pg_url: str, mysql_url: str, cases: list, n: int) -> None:  # type: ignore[type-arg]
    """The host's side alone, in this thread, without wasm: open (a pooled connection), the call
    with its conversion to WIT values, and the drop, interleaved with the plain client's call."""
    from runtime.capabilities.mysql import client as mysql_client
    from runtime.capabilities.mysql import host as mysql_host
    from runtime.capabilities.outbound_db import guest
    from runtime.capabilities.outbound_db.rdbms import Version, lower_row_set
    from runtime.capabilities.postgres import client as pg_client
    from runtime.capabilities.postgres import host as pg_host
    from runtime.capabilities.redis import client as redis_client
    from runtime.capabilities.redis import host as redis_host
    from runtime.core.context import bind

    def redis_get() -> object:
        lease = redis_host._open(redis_url)
        guest.drop(guest.hold(lease))  # (the handle's table slot and release, as a guest's drop)
        return redis_client.get(lease, "bench")

    def pg_one() -> object:
        lease = pg_host._open(pg_url)
        rep = guest.hold(lease)
        rows = lower_row_set(pg_client.query(lease, "SELECT 1::int4 AS one, 'x'::text AS s", []), Version.PG4)
        guest.drop(rep)
        return rows

    def mysql_one() -> object:
        lease = mysql_host._open(mysql_url)
        rep = guest.hold(lease)
        rows = lower_row_set(mysql_client.query(lease, "SELECT 1 AS one, 'x' AS s", []), Version.V2)
        guest.drop(rep)
        return rows

    slot = running.slots["web"]  # type: ignore[attr-defined]
    ctx = slot.guest.new_context(time.monotonic() + 3600)
    print(f"\nthe host's side alone (open + call + WIT values + drop, no wasm), {n} rounds, interleaved")
    print(f"{'case':28} {'host ms':>8} {'plain ms':>9} {'host/plain':>11}  (plain here: the same loop, hot caches)")
    with bind(ctx):
        for (label, _, _, plain), host_fn in zip(cases, (redis_get, pg_one, mysql_one), strict=True):
            host_t: list[float] = []
            plain_t: list[float] = []
            for _ in range(n):
                host_t += plain_times(1, host_fn, warm=0)
                plain_t += plain_times(1, plain, warm=0)
            host_ms, plain_ms = median_ms(host_t), median_ms(plain_t)
            print(f"{label:28} {host_ms:8.3f} {plain_ms:9.3f} {host_ms / plain_ms:10.2f}x")
    ctx.close()


def plain_times(n: int, fn: object, warm: int = 20) -> list[float]:
    for _ in range(warm):
        fn()  # type: ignore[operator]
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return times


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


TARGET = 2.0  # issue 12: a warm pooled call costs a request at most 2x the plain client's call


class ClientTimer:
    """Adds up the time spent in the client library's own call inside a request (the command or
    statement on the wire, under its deadline guard): the part a plain client also pays."""

    def __init__(self) -> None:
        self.total = 0.0

    def install(self) -> None:
        from runtime.capabilities.mysql import client as mysql_client
        from runtime.capabilities.postgres import client as pg_client
        from runtime.capabilities.redis import client as redis_client

        for module, name in ((redis_client, "command"), (pg_client, "_run"), (mysql_client, "_run")):
            original = getattr(module, name)

            def timed_call(*args: object, _orig: object = original) -> object:
                start = time.perf_counter()
                try:
                    return _orig(*args)  # type: ignore[operator]
                finally:
                    self.total += time.perf_counter() - start

            setattr(module, name, timed_call)


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def verdict(ratio: float) -> str:
    return f"{ratio:5.2f}x {'meets' if ratio <= TARGET else 'misses'}"


def report(per_case: dict[str, list[dict[str, float]]]) -> None:
    """The database cases' tables: medians over the rounds of each per-round figure."""
    meds = {label: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for label, runs in per_case.items()}
    print(f"\n{'case':28} {'noop ms':>8} {'req ms':>7} {'call ms':>8} {'host ms':>8} {'lib ms':>7} "
          f"{'plain ms':>9}  {'call/plain':>10} {'(rounds)':>12}  {'host/plain':>10}  target <= {TARGET:.0f}x")
    for label, med in meds.items():
        ratios = [r["call"] / r["plain"] for r in per_case[label]]
        spread = f"{min(ratios):.1f}-{max(ratios):.1f}x"
        print(f"{label:28} {med['noop']:8.2f} {med['req']:7.2f} {med['call']:8.3f} {med['host']:8.3f} "
              f"{med['lib']:7.3f} {med['plain']:9.3f}  {statistics.median(ratios):9.2f}x {spread:>12}  "
              f"{med['host'] / med['plain']:9.2f}x  call: {verdict(statistics.median(ratios))}, "
              f"host: {verdict(med['host'] / med['plain'])}")
    print("\nwhere the call's time goes (medians over the rounds, ms): open, the call's own host")
    print("function without the client library (statement and values), the library, the drop;")
    print("`WIT values`: this host converting the functions' arguments and results to and from")
    print("wasmtime's component values (not in `host`); the rest of `call` is the guest (SDK code in")
    print("wasm) and wasmtime's side of the crossings (PostgreSQL: psycopg reading the received rows")
    print("counts in `call fn`, not in `lib`)")
    print(f"{'case':28} {'open':>7} {'call fn':>8} {'lib':>7} {'drop':>7} {'WIT values':>11} {'guest+crossing':>15}")
    for label, med in meds.items():
        own_call = med["host"] - med["open"] - med["drop"] - med["lib"]
        print(f"{label:28} {med['open']:7.3f} {own_call:8.3f} {med['lib']:7.3f} {med['drop']:7.3f} "
              f"{med['values']:11.3f} {med['call'] - med['host'] - med['values']:15.3f}")
    print("\nthe least a call can cost here (medians over the rounds, ms): the same request with the")
    print("database functions answering at once, without a database (open: a handle to nothing; the")
    print("call: its own last real answer, lowered again), minus noop: the guest, the crossings and")
    print("the WIT values. Over the plain client's whole call, it bounds what call/plain can reach.")
    print(f"{'case':28} {'floor ms':>8} {'floor/plain':>12}")
    for label, med in meds.items():
        print(f"{label:28} {med['floor']:8.3f} {med['floor'] / med['plain']:11.2f}x")


async def databases(n: int, rounds: int) -> None:
    from runtime.capabilities.mysql.host import MysqlCapability
    from runtime.capabilities.postgres.host import PostgresCapability
    from runtime.capabilities.redis.host import RedisCapability

    host = HostTimer()
    host.install(RedisCapability, PostgresCapability, MysqlCapability)
    library = ClientTimer()
    library.install()
    wasm = db_wasm()
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = RedisServer(Path(tmp))
        pg = PostgresServer()
        maria = MariaDbServer()
        rt = Runtime(cache_root() / "runtime-spin")
        try:
            allowed = [f"redis://127.0.0.1:{redis_server.port}", f"postgres://127.0.0.1:{pg.port}",
                       f"mysql://127.0.0.1:{maria.port}"]
            running = await rt.load_app(
                loaded_app(component("web", wasm, metadata={"allowed_outbound_hosts": allowed}), name="bench-db"),
                AppSettings(timeout_s=30.0, memory_bytes=256 * MiB),
            )
            redis_client = redis_server.client()
            redis_client.set("bench", b"v" * 100)  # type: ignore[attr-defined]
            pg_conn = pg.connect()
            maria_conn = maria.connect()

            def maria_one() -> object:
                cur = maria_conn.cursor()  # type: ignore[attr-defined]
                cur.execute("SELECT 1 AS one, 'x' AS s")
                return cur.fetchall()

            cases = [
                ("Redis get (100 B)", "/redis/get", f"addr={redis_server.url}&key=bench",
                 lambda: redis_client.get("bench")),  # type: ignore[attr-defined]
                ("PostgreSQL one-row select", "/pg/one", f"addr={pg.url}",
                 lambda: pg_conn.execute("SELECT 1::int4 AS one, 'x'::text AS s").fetchall()),  # type: ignore[attr-defined]
                ("MySQL one-row select", "/mysql/one", f"addr={maria.url}", maria_one),
            ]
            await timed(running, 20, "/noop")
            for _, path, query, _ in cases:
                await timed(running, 20, path, query=query)  # warm: the pool holds a connection
            print(f"\noutbound databases: {rounds} rounds x {n} iterations per case; load average {loadavg()}")
            print("Each iteration runs, in alternating order, the app's no-call route (noop, with the same")
            print("query string as the call's route, so the guest parses the same request), the route with")
            print("the call (req), and the plain client's call on one open connection in this process right")
            print("after a request (plain: same process, same cache and scheduling conditions). Per round:")
            print("medians. call = req - noop: what the call adds to a request (SDK code in wasm, crossing the")
            print("component boundary, the host functions); host = time inside the host functions; lib = the")
            print("client library's own call within them. Figures: the median over the rounds.")
            per_case: dict[str, list[dict[str, float]]] = {label: [] for label, *_ in cases}
            for round_no in range(rounds):
                for label, path, query, plain in cases:
                    base_t: list[float] = []
                    call_t: list[float] = []
                    plain_t: list[float] = []
                    host_t: list[float] = []
                    lib_t: list[float] = []
                    open_t: list[float] = []
                    drop_t: list[float] = []
                    values_t: list[float] = []
                    floor_t: list[float] = []
                    for i in range(n):
                        if (i + round_no) % 2:
                            base_t += await timed(running, 1, "/noop", query=query)
                        host.reset()
                        library.total = 0.0
                        call_t += await timed(running, 1, path, query=query)
                        host_t.append(host.total)
                        lib_t.append(library.total)
                        open_t.append(host.open)
                        drop_t.append(host.drop)
                        values_t.append(host.values)
                        plain_t += plain_times(1, plain, warm=0)
                        host.canned = True
                        try:
                            floor_t += await timed(running, 1, path, query=query)
                        finally:
                            host.canned = False
                        if not (i + round_no) % 2:
                            base_t += await timed(running, 1, "/noop", query=query)
                    noop, req = median_ms(base_t), median_ms(call_t)
                    per_case[label].append({
                        "noop": noop, "req": req, "call": req - noop, "host": median_ms(host_t),
                        "lib": median_ms(lib_t), "plain": median_ms(plain_t), "open": median_ms(open_t),
                        "drop": median_ms(drop_t), "values": median_ms(values_t),
                        "floor": median_ms(floor_t) - noop,
                    })
                print(f"  round {round_no + 1}/{rounds} done; load average {loadavg()}")
            report(per_case)
            host_path(running, redis_server.url, pg.url, maria.url, cases, n * 5)
            print(f"load average at the end: {loadavg()}")
            pg_conn.close()  # type: ignore[attr-defined]
            maria_conn.close()  # type: ignore[attr-defined]
        finally:
            rt.close()
            redis_server.stop()
            pg.close()
            maria.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200,
                        help="requests per case (host APIs); iterations per round and case (databases)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the database cases (medians over them)")
    parser.add_argument("--only", choices=["host-apis", "databases"])
    args = parser.parse_args()
    if args.only != "databases":
        asyncio.run(main(args.requests))
    if args.only != "host-apis":
        asyncio.run(databases(args.requests, args.rounds))
