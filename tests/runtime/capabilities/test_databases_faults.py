"""Outbound databases when the server fails: stopped mid-test, a listener that never answers,
a server that hangs in the middle of a statement. The request costs an error within its timeout,
another app keeps serving meanwhile, and the runtime's worker threads all come back."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import Runtime
from runtime.http.app import RunningApp
from tests.support.db_apps import call, call_json, db_wasm, load, timed, wait_workers_idle
from tests.support.db_servers import MariaDbServer, PostgresServer, RedisServer, SilentListener
from tests.support.fixtures import cache_root

pytestmark = pytest.mark.slow

TIMEOUT_S = 2.0  # the apps' request timeout
MARGIN_S = 1.0  # the epoch ticker, the event loop and a busy 2-core machine


@pytest.fixture(scope="module")
def wasm() -> Path:
    return db_wasm()


@pytest.fixture(scope="module")
def rt() -> Iterator[Runtime]:
    runtime = Runtime(cache_root() / "runtime-spin")
    yield runtime
    runtime.close()


async def neighbour_serves_during(neighbour: RunningApp, work: asyncio.Task[tuple[int, bytes, float]]) -> list[float]:
    """Latencies of the neighbour app's requests, made while `work` runs."""
    latencies = []
    while not work.done():
        status, body, elapsed = await timed(neighbour, "/noop")
        assert (status, body) == (200, b"ok")
        latencies.append(elapsed)
        await asyncio.sleep(0.05)
    return latencies


def connect_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("lepton-") and t.name.endswith("-connect")]


async def test_servers_stopped_mid_test(rt: Runtime, wasm: Path, tmp_path: Path) -> None:
    redis_server = RedisServer(tmp_path)
    pg = PostgresServer()
    try:
        running = await load(rt, wasm, [f"redis://127.0.0.1:{redis_server.port}", f"postgres://127.0.0.1:{pg.port}"],
                             timeout_s=TIMEOUT_S)
        neighbour = await load(rt, wasm, [], name="neighbour", timeout_s=TIMEOUT_S)
        assert await call(running, "/redis/get", addr=redis_server.url, key="k") == (404, b"missing")
        assert await call(running, "/pg/one", addr=pg.url) == (200, b"1")

        redis_server.stop()
        pg.stop()  # fast shutdown: the pooled connections are closed by the server
        status, body, elapsed = await timed(running, "/redis/get", addr=redis_server.url, key="k")
        assert status == 500 and elapsed < TIMEOUT_S, (body, elapsed)
        assert b"Error_Other" in body and b"refused" in body.lower()
        status, body, elapsed = await timed(running, "/pg/one", addr=pg.url)
        assert status == 500 and elapsed < TIMEOUT_S, (body, elapsed)
        assert b"Error_ConnectionFailed" in body
        assert await call(neighbour, "/noop") == (200, b"ok")
        assert await wait_workers_idle(rt)
    finally:
        redis_server.stop()
        pg.close()


@pytest.mark.parametrize("kind", ["redis", "pg4", "mysql", "mqtt"])
async def test_a_server_that_never_answers(rt: Runtime, wasm: Path, silent_listener: SilentListener, kind: str) -> None:
    port = silent_listener.port
    scheme = {"redis": "redis", "pg4": "postgres", "mysql": "mysql", "mqtt": "mqtt"}[kind]
    running = await load(rt, wasm, [f"{scheme}://127.0.0.1:{port}"], timeout_s=TIMEOUT_S, name=f"hung-{kind}")
    neighbour = await load(rt, wasm, [], name="neighbour", timeout_s=TIMEOUT_S)
    if kind == "mqtt":  # MQTT connects at the first publish
        path, query = "/mqtt", {"addr": f"mqtt://127.0.0.1:{port}?client_id=c", "topic": "t", "qos": "1"}
    elif kind == "redis":  # a RESP2 connection without a password says nothing until the first command
        path, query = "/redis/get", {"addr": f"redis://127.0.0.1:{port}", "key": "k"}
    else:
        addr = {"redis": f"redis://127.0.0.1:{port}", "pg4": f"postgres://u@127.0.0.1:{port}/db",
                "mysql": f"mysql://u:p@127.0.0.1:{port}/db"}[kind]
        path, query = f"/open/{kind}", {"addr": addr}

    hung = asyncio.create_task(timed(running, path, **query))
    latencies = await neighbour_serves_during(neighbour, hung)
    status, body, elapsed = await hung
    assert status == 500 and elapsed < TIMEOUT_S + MARGIN_S, (body, elapsed)
    assert silent_listener.accepted, "the request never reached the listener"
    assert latencies and max(latencies) < 1.0, latencies
    assert await wait_workers_idle(rt)
    # The library's connect, abandoned at the deadline, ends by its own timeout.
    deadline = time.monotonic() + 10
    while connect_threads() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not connect_threads()


async def test_redis_hangs_mid_command(rt: Runtime, wasm: Path, redis_server: RedisServer) -> None:
    running = await load(rt, wasm, [f"redis://127.0.0.1:{redis_server.port}"], timeout_s=TIMEOUT_S)
    neighbour = await load(rt, wasm, [], name="neighbour", timeout_s=TIMEOUT_S)
    assert (await call(running, "/redis/get", addr=redis_server.url, key="k"))[0] == 404  # a pooled connection
    assert redis_server.proc is not None
    os.kill(redis_server.proc.pid, signal.SIGSTOP)  # accepts nothing, answers nothing
    try:
        hung = asyncio.create_task(timed(running, "/redis/get", addr=redis_server.url, key="k"))
        await neighbour_serves_during(neighbour, hung)
        status, body, elapsed = await hung
        assert status == 500 and elapsed < TIMEOUT_S + MARGIN_S, (body, elapsed)
        assert await wait_workers_idle(rt)
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    # The connection the watchdog cut is not reused: the next request gets a fresh one.
    assert (await call(running, "/redis/get", addr=redis_server.url, key="k"))[0] == 404


@pytest.mark.parametrize("database", ["postgres", "mysql"])
async def test_a_statement_outliving_the_deadline(
    rt: Runtime, wasm: Path, postgres_server: PostgresServer, mariadb_server: MariaDbServer, database: str
) -> None:
    server = postgres_server if database == "postgres" else mariadb_server
    scheme = "postgres" if database == "postgres" else "mysql"
    running = await load(rt, wasm, [f"{scheme}://127.0.0.1:{server.port}"], timeout_s=TIMEOUT_S, name=f"slow-{scheme}")
    neighbour = await load(rt, wasm, [], name="neighbour", timeout_s=TIMEOUT_S)
    path, sleep = ("/pg/4/sql", "SELECT pg_sleep(30)") if database == "postgres" else ("/mysql/sql", "SELECT SLEEP(30)")
    hung = asyncio.create_task(timed(running, path, addr=server.url, q=sleep))
    await neighbour_serves_during(neighbour, hung)
    status, body, elapsed = await hung
    assert status == 500 and elapsed < TIMEOUT_S + MARGIN_S, (body, elapsed)
    assert await wait_workers_idle(rt)
    one = "/pg/one" if database == "postgres" else "/mysql/one"
    assert await call(running, one, addr=server.url) == (200, b"1")  # a fresh connection
    status, out = await call_json(running, path, addr=server.url, q="SELECT 2 AS two")
    assert status == 200 and out["rows"][0][0][1] == 2
