"""Outbound Redis and PostgreSQL end to end through `lepton-router serve`: a real Python spin-sdk
app (tests/fixtures/spin_py_db) pulled from a registry talks to real servers on 127.0.0.1, an
address outside its allowed_outbound_hosts opens no connection, and when Redis is stopped the
request errors within the app's timeout while another app keeps serving."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

import registry
from tests.support.db_apps import db_wasm
from tests.support.db_servers import PostgresServer, RedisServer
from tests.support.registry_apps import AppComponent, write_local_app
from tests.support.registry_server import RegistryServer
from tests.support.server import RouterServer

pytestmark = pytest.mark.slow


def push(registry_server: RegistryServer, work: Path, wasm: bytes, name: str, allowed: list[str]) -> str:
    component = AppComponent(id="web", wasm=wasm, extra={"metadata": {"allowed_outbound_hosts": allowed}})
    lock = write_local_app(work / name, [component], name=name, version="1.0.0")
    reference = f"{registry_server.host}/spin/{name}:1.0.0"
    registry.push_app(lock, reference, insecure=True)
    return reference


def db_and_other_routes(work: Path, cache_dir: Path, db: str, other: str, *, timeout: str) -> Path:
    """routes.toml serving `db` under /db (with this timeout) and `other` under /other."""
    routes = work / "routes.toml"
    routes.write_text(
        f'[server]\ncache_dir = "{cache_dir}"\n\n'
        f'[apps.db]\nsource = "{db}"\ninsecure = true\nprefix = "/db"\ntimeout = "{timeout}"\n\n'
        f'[apps.other]\nsource = "{other}"\ninsecure = true\nprefix = "/other"\n'
    )
    return routes


def test_databases_through_the_router(
    registry: RegistryServer,
    router_server,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    router_cache_dir: Path,
    redis_server: RedisServer,
    postgres_server: PostgresServer,
) -> None:
    wasm = db_wasm().read_bytes()
    db = push(registry, tmp_path, wasm, "db",
              [f"redis://127.0.0.1:{redis_server.port}", f"postgres://127.0.0.1:{postgres_server.port}"])
    other = push(registry, tmp_path, wasm, "other", [])
    server: RouterServer = router_server(db_and_other_routes(tmp_path, router_cache_dir, db, other, timeout="3s"))
    server.wait_ready()

    scenario = server.get("/db/redis", params={"addr": redis_server.url, "key": "e2e"})
    assert scenario.status_code == 200, server.log()
    out = json.loads(scenario.text)
    assert out["get"] == "7600ff" and out["execute_set"] == [["RedisResult_Status", "OK"]] and out["del"] == 4
    one = server.get("/db/pg/one", params={"addr": postgres_server.url})
    assert (one.status_code, one.text) == (200, "1"), server.log()
    status = server.get("/db/pg/4/types", params={"addr": postgres_server.url, "table": "e2e"})
    assert status.status_code == 200 and json.loads(status.text)["insert"] == 1

    # The other app may not reach these servers: refused before any connection.
    before = (redis_server.connections_received(), postgres_server.connections())
    denied = server.get("/other/open/redis", params={"addr": redis_server.url})
    assert (denied.status_code, json.loads(denied.text)["error"]) == (500, "Error_InvalidAddress")
    denied = server.get("/other/open/pg4", params={"addr": postgres_server.url})
    assert (denied.status_code, json.loads(denied.text)["error"]) == (500, "Error_ConnectionFailed")
    assert (redis_server.connections_received(), postgres_server.connections()) == before

    # Redis goes away: the request errors within the app's 3 s, the other app keeps serving.
    redis_server.stop()
    start = time.monotonic()
    failed = httpx.get(f"{server.base_url}/db/redis/get", params={"addr": redis_server.url, "key": "k"}, timeout=30)
    assert failed.status_code == 500 and time.monotonic() - start < 3.0
    assert server.get("/other/noop").text == "ok"
    assert server.get("/db/pg/one", params={"addr": postgres_server.url}).text == "1"
