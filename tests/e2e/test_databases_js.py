"""Outbound Redis, PostgreSQL, MySQL and MQTT from a JS app (tests/fixtures/spin_js_db, built with
j2w and the Spin 2.0 interfaces) through `lepton-router serve`, against real servers on 127.0.0.1:
the values come back as the interfaces define them, an address outside allowed_outbound_hosts opens
no connection, and another app keeps serving."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.e2e.test_databases import db_and_other_routes, push
from tests.support.db_servers import MariaDbServer, MosquittoBroker, PostgresServer, RedisServer
from tests.support.fixtures import FIXTURES_DIR, build_js_app
from tests.support.registry_server import RegistryServer
from tests.support.server import RouterServer

pytestmark = pytest.mark.slow

# The row the app selects with one parameter of each type (see the app's PARAMS), from either server.
EXPECTED_ROW = [{"int32": 42}, {"int64": "9007199254740993"}, {"floating64": 2.5}, {"str": "héllo"},
                   {"binary": "0001feff"}, {"db-null": None}]


def test_js_app_databases_through_the_router(
    registry: RegistryServer,
    router_server,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    router_cache_dir: Path,
    redis_server: RedisServer,
    postgres_server: PostgresServer,
    mariadb_server: MariaDbServer,
    mqtt_broker: MosquittoBroker,
) -> None:
    wasm = build_js_app(FIXTURES_DIR / "spin_js_db").read_bytes()
    allowed = [f"redis://127.0.0.1:{redis_server.port}", f"postgres://127.0.0.1:{postgres_server.port}",
               f"mysql://127.0.0.1:{mariadb_server.port}", f"mqtt://127.0.0.1:{mqtt_broker.port}"]
    db = push(registry, tmp_path, wasm, "jsdb", allowed)
    other = push(registry, tmp_path, wasm, "jsother", [])
    server: RouterServer = router_server(db_and_other_routes(tmp_path, router_cache_dir, db, other, timeout="10s"))
    server.wait_ready()

    redis = server.get("/db/redis", params={"addr": redis_server.url, "key": "js-e2e"})
    assert redis.status_code == 200, server.log()
    assert json.loads(redis.text) == {"get": "hello from js", "incr": "2", "del": 2}

    pg = server.get("/db/pg", params={"addr": postgres_server.url})
    assert pg.status_code == 200, (pg.text, server.log())
    assert json.loads(pg.text) == {"columns": ["i32", "i64", "f64", "s", "b", "n"], "row": EXPECTED_ROW}

    mysql = server.get("/db/mysql", params={"addr": mariadb_server.url})
    assert mysql.status_code == 200, (mysql.text, server.log())
    assert json.loads(mysql.text) == {"columns": ["i32", "i64", "f64", "s", "b", "n"], "row": EXPECTED_ROW}

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    received: list[bytes] = []
    subscribed, arrived = threading.Event(), threading.Event()
    sub = paho.Client(CallbackAPIVersion.VERSION2, client_id="js-e2e-subscriber")
    sub.on_connect = lambda c, u, f, r, p: c.subscribe("js/#", qos=1)
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_message = lambda c, u, m: (received.append(m.payload), arrived.set())
    sub.connect("127.0.0.1", mqtt_broker.port)
    sub.loop_start()
    try:
        assert subscribed.wait(10)
        addr = f"mqtt://127.0.0.1:{mqtt_broker.port}?client_id=js-guest"
        published = server.get("/db/mqtt", params={"addr": addr, "topic": "js/e2e"})
        assert published.status_code == 200, (published.text, server.log())
        assert arrived.wait(10) and received == [b"hello from js"]
    finally:
        sub.loop_stop()
        sub.disconnect()

    # The same app without these hosts allowed: each open fails with the interface's own error
    # and no server sees a connection; the serving app is unaffected.
    before = (redis_server.connections_received(), postgres_server.connections(), mariadb_server.connections(),
              mqtt_broker.connections())
    for path, addr, tag in (("/other/redis", redis_server.url, "invalid-address"),
                            ("/other/pg", postgres_server.url, "connection-failed"),
                            ("/other/mysql", mariadb_server.url, "connection-failed"),
                            ("/other/mqtt", f"mqtt://127.0.0.1:{mqtt_broker.port}", "connection-failed")):
        denied = server.get(path, params={"addr": addr, "key": "x", "topic": "js/denied"})
        assert (denied.status_code, json.loads(denied.text)["error"]) == (500, tag), (path, denied.text)
    assert (redis_server.connections_received(), postgres_server.connections(), mariadb_server.connections(),
            mqtt_broker.connections()) == before
    assert server.get("/db/redis", params={"addr": redis_server.url, "key": "js-after"}).status_code == 200
