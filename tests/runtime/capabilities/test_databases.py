"""Outbound Redis, PostgreSQL, MySQL and MQTT from a real Python spin-sdk 3.4.1 app
(tests/fixtures/spin_py_db) through Runtime.load_app + RunningApp.handle, against real servers on
127.0.0.1 (tests/support/db_servers.py): every function, every value type both ways, NULLs, SQL
errors, MQTT delivery, allow-list denial proven by the servers' own connection counts, pooling."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import Runtime
from tests.support.db_apps import call, call_json, db_wasm, load
from tests.support.db_servers import MariaDbServer, MosquittoBroker, PostgresServer, RedisServer
from tests.support.fixtures import cache_root

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wasm() -> Path:
    return db_wasm()


@pytest.fixture(scope="module")
def rt() -> Iterator[Runtime]:
    runtime = Runtime(cache_root() / "runtime-spin")
    yield runtime
    runtime.close()


# -- Redis -------------------------------------------------------------------------------------


async def test_redis_every_function(rt: Runtime, wasm: Path, redis_server: RedisServer) -> None:
    running = await load(rt, wasm, [f"redis://127.0.0.1:{redis_server.port}"])
    status, out = await call_json(running, "/redis", addr=redis_server.url, key="k1")
    assert status == 200, out
    assert out == {
        "del_before": 0,
        "get_missing": None,
        "get": "7600ff",
        "incr": [1, 2],
        "incr_not_a_number": {"error": "Error_Other", "value": ["Error_Other", "value is not an integer or out of range"]},
        "sadd": 3,
        "smembers": ["a", "b", "c"],
        "srem": 1,
        "smembers_after": ["b", "c"],
        "sadd_wrong_type": {
            "error": "Error_Other",
            "value": ["Error_Other", "WRONGTYPE Operation against a key holding the wrong kind of value"],
        },
        # execute keeps Redis's reply kinds: a status (+OK) is not a bulk string
        "execute_set": [["RedisResult_Status", "OK"]],
        "execute_incrby": [["RedisResult_Int64", 42]],
        "execute_mget": [["RedisResult_Binary", "7600ff"], ["RedisResult_Nil"]],
        "execute_unknown": {
            "error": "Error_Other",
            "value": ["Error_Other", "unknown command 'NOSUCHCOMMAND', with args beginning with: "],
        },
        "publish": None,
        "del": 4,
    }
    # The data is really in the server.
    assert await call(running, "/redis/get", addr=redis_server.url, key="k1") == (404, b"missing")
    redis_server.client().set("k2", b"\x00bin")  # type: ignore[attr-defined]
    assert await call(running, "/redis/get", addr=redis_server.url, key="k2") == (200, b"\x00bin")


async def test_redis_publish_reaches_a_subscriber(rt: Runtime, wasm: Path, redis_server: RedisServer) -> None:
    pubsub = redis_server.client().pubsub()  # type: ignore[attr-defined]
    pubsub.subscribe("k3:channel")
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    running = await load(rt, wasm, [f"redis://127.0.0.1:{redis_server.port}"])
    status, _ = await call_json(running, "/redis", addr=redis_server.url, key="k3")
    assert status == 200
    message = pubsub.get_message(timeout=5)
    assert message is not None and message["data"] == b"message"
    pubsub.close()


async def test_redis_connections_are_pooled_and_capped(rt: Runtime, wasm: Path, redis_server: RedisServer) -> None:
    running = await load(rt, wasm, [f"redis://127.0.0.1:{redis_server.port}"])
    before = redis_server.connections_received()
    for _ in range(5):
        assert (await call(running, "/redis/get", addr=redis_server.url, key="nope"))[0] == 404
    assert redis_server.connections_received() - before == 1  # one connection, reused

    # 14 requests holding a connection at once: the app never has more than 10 (the rest wait).
    results = await asyncio.gather(*(call(running, "/hold", addr=redis_server.url, ms="400") for _ in range(14)))
    assert all(r == (200, b"held") for r in results), results
    assert redis_server.connections_received() - before <= 10


# -- PostgreSQL --------------------------------------------------------------------------------

NULL_ROW = lambda n: [["DbValue_DbNull"]] * n  # noqa: E731

PG_V2_ROW = [
    ["DbValue_Boolean", True], ["DbValue_Int16", -8], ["DbValue_Int16", -16000], ["DbValue_Int32", -2000000000],
    ["DbValue_Int64", -9000000000000000000], ["DbValue_Floating32", "1.5"], ["DbValue_Floating64", "-2.25e+100"],
    ["DbValue_Str", "héllo ☃"], ["DbValue_Binary", "0001feff"],
]
PG_V3_ROW = [
    *PG_V2_ROW,
    ["DbValue_Date", [2024, 2, 29]], ["DbValue_Time", [23, 59, 58, 123456000]],
    ["DbValue_Datetime", [1999, 12, 31, 23, 59, 59, 999999000]],
    ["DbValue_Datetime", [1971, 1, 1, 0, 0, 0, 0]],  # a timestamp parameter is seconds since the epoch
]
PG_V4_ROW = [
    *PG_V3_ROW,
    ["DbValue_Uuid", "6c8e3f5e-1b2a-4c3d-9e8f-0123456789ab"],
    ["DbValue_Jsonb", b'{"a":"x","b":[1,2.5,null]}'.hex()],
    ["DbValue_Decimal", "12345.678900"],
    ["DbValue_RangeInt32", [[1, "INCLUSIVE"], [11, "EXCLUSIVE"]]],  # [1,10] as PostgreSQL normalises it
    ["DbValue_RangeInt64", [None, [5000000000, "EXCLUSIVE"]]],
    ["DbValue_RangeDecimal", [["1.5", "EXCLUSIVE"], ["2.5", "INCLUSIVE"]]],
    ["DbValue_ArrayInt32", [1, None, -3]],
    ["DbValue_ArrayInt64", [9000000000, None]],
    ["DbValue_ArrayDecimal", ["1.10", None]],
    ["DbValue_ArrayStr", ["a", None, "b c"]],
    ["DbValue_Interval", {"micros": 3723000004, "days": -2, "months": 14}],
]
PG_BASE_TYPES = ["Boolean", "Int16", "Int16", "Int32", "Int64", "Floating32", "Floating64", "Str", "Binary"]
PG_V3_TYPES = [*PG_BASE_TYPES, "Date", "Time", "Datetime", "Datetime"]
PG_V4_TYPES = [*PG_V3_TYPES, "Uuid", "Jsonb", "Decimal", "RangeInt32", "RangeInt64", "RangeDecimal", "ArrayInt32",
               "ArrayInt64", "ArrayDecimal", "ArrayStr", "Interval"]


def _columns(out: dict) -> list:  # type: ignore[type-arg]
    return [c[1] for c in out["read"]["columns"]]


async def test_postgres_v4_every_value_type(rt: Runtime, wasm: Path, postgres_server: PostgresServer) -> None:
    running = await load(rt, wasm, [f"postgres://127.0.0.1:{postgres_server.port}"])
    status, out = await call_json(running, "/pg/4/types", addr=postgres_server.url, table="t4")
    assert status == 200, out
    assert (out["create"], out["insert"], out["insert_nulls"]) == (0, 1, 1)
    assert _columns(out) == [[f"DbDataType_{t}"] for t in PG_V4_TYPES] + [["DbDataType_Other", "inet"]]
    # inet is not a type Spin maps: its raw binary form (family, bits, is_cidr, length, address)
    assert out["read"]["rows"] == [[*PG_V4_ROW, ["DbValue_Unsupported", "022000040a010203"]], NULL_ROW(25)]
    assert out["empty"] == {"columns": [], "rows": []}  # as Spin: column metadata comes from the first row
    assert out["by_param"]["rows"] == [[["DbValue_Int32", 1]]]
    [case, error] = out["sql_error"]["value"]
    assert case == "Error_QueryFailed" and error[0] == "QueryError_DbError"
    assert error[1]["code"] == "42P01" and error[1]["severity"] == "ERROR"
    assert error[1]["message"] == 'relation "no_such_table" does not exist'
    duplicate = out["execute_error"]["value"][1][1]
    assert duplicate["code"] == "23505" and duplicate["detail"] == "Key (id)=(1) already exists."
    assert ["constraint", "t4_pkey"] in duplicate["extras"] and ["table", "t4"] in duplicate["extras"]


async def test_postgres_v3_and_v2_values(rt: Runtime, wasm: Path, postgres_server: PostgresServer) -> None:
    running = await load(rt, wasm, [f"postgres://127.0.0.1:{postgres_server.port}"])
    status, v3 = await call_json(running, "/pg/3/types", addr=postgres_server.url, table="t3")
    assert status == 200, v3
    assert _columns(v3) == [t.upper() for t in PG_V3_TYPES] + ["OTHER"]
    assert v3["read"]["rows"] == [[*PG_V3_ROW, ["DbValue_Unsupported"]], NULL_ROW(14)]
    assert v3["sql_error"] == {
        "error": "Error_QueryFailed",
        "value": ["Error_QueryFailed", 'relation "no_such_table" does not exist\nLINE 1: SELECT * FROM no_such_table\n'
                  "                      ^"],
    }

    status, v2 = await call_json(running, "/pg/2/types", addr=postgres_server.url, table="t2")
    assert status == 200, v2
    assert _columns(v2) == [t.upper() for t in PG_BASE_TYPES] + ["OTHER"]
    assert v2["read"]["rows"] == [[*PG_V2_ROW, ["DbValue_Unsupported"]], NULL_ROW(10)]
    assert v2["unsigned"] == {
        "error": "Error_ValueConversionFailed",
        "value": ["Error_ValueConversionFailed", "Postgres does not support unsigned integers"],
    }
    assert v2["execute_error"]["error"] == "Error_QueryFailed"
    # Newer types read through the older interfaces are `unsupported`, as Spin converts them.
    status, rows = await call_json(running, "/pg/2/sql", addr=postgres_server.url, q="SELECT '2024-01-02'::date, NULL::text")
    assert rows["rows"] == [[["DbValue_Unsupported"], ["DbValue_DbNull"]]]
    assert rows["columns"] == [["date", "OTHER"], ["text", "STR"]]


# -- MySQL -------------------------------------------------------------------------------------


async def test_mysql_every_value_type(rt: Runtime, wasm: Path, mariadb_server: MariaDbServer) -> None:
    running = await load(rt, wasm, [f"mysql://127.0.0.1:{mariadb_server.port}"])
    status, out = await call_json(running, "/mysql/types", addr=mariadb_server.url, table="tm")
    assert status == 200, out
    # BOOL is TINYINT(1): Spin's MySQL reads it as int8.
    assert _columns(out) == ["INT8", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64",
                             "FLOATING32", "FLOATING64", "STR", "STR", "BINARY", "BINARY"]
    assert out["read"]["rows"] == [
        [
            ["DbValue_Int8", 1], ["DbValue_Int8", -128], ["DbValue_Int16", -32768], ["DbValue_Int32", -2147483648],
            ["DbValue_Int64", -9223372036854775808], ["DbValue_Uint8", 255], ["DbValue_Uint16", 65535],
            ["DbValue_Uint32", 4294967295], ["DbValue_Uint64", 18446744073709551615], ["DbValue_Floating32", "1.5"],
            ["DbValue_Floating64", "-2.25e+100"], ["DbValue_Str", "h'é\"llo ☃ ? \\"], ["DbValue_Str", "text"],
            ["DbValue_Binary", "002701feff5c"], ["DbValue_Binary", "626c6f62"],
        ],
        NULL_ROW(15),
    ]
    # Types Spin's MySQL does not map: NULL reads, a value fails the query.
    assert out["nulls_of_other_types"] == {
        "columns": [["c_date", "OTHER"], ["c_dec", "OTHER"]], "rows": [NULL_ROW(2)],
    }
    assert out["date"]["error"] == "Error_ValueConversionFailed"
    assert "in column c_date data type Other" in out["date"]["value"][1]
    # `?` inside strings, identifiers and comments is not a parameter.
    assert out["by_param"]["rows"] == [[["DbValue_Int32", 1], ["DbValue_Int32", 7]]]
    assert out["literal_marks"]["rows"] == [[["DbValue_Str", "?"], ["DbValue_Int32", 1]]]
    assert out["param_count"]["error"] == "Error_QueryFailed"
    assert out["sql_error"] == {
        "error": "Error_QueryFailed",
        "value": ["Error_QueryFailed", "Table 'spin.no_such_table' doesn't exist (error 1146)"],
    }
    assert out["execute_error"] == {
        "error": "Error_QueryFailed",
        "value": ["Error_QueryFailed", "Duplicate entry '1' for key 'PRIMARY' (error 1062)"],
    }


# -- MQTT --------------------------------------------------------------------------------------


async def test_mqtt_publish_is_received(rt: Runtime, wasm: Path, mqtt_broker: MosquittoBroker) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    received: list[tuple[str, bytes, int]] = []
    subscribed = threading.Event()
    sub = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-subscriber")
    sub.on_connect = lambda c, u, f, r, p: c.subscribe("spin/#", qos=2)
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_message = lambda c, u, m: received.append((m.topic, m.payload, m.qos))
    sub.connect("127.0.0.1", mqtt_broker.port)
    sub.loop_start()
    try:
        assert subscribed.wait(10)
        running = await load(rt, wasm, [f"mqtt://127.0.0.1:{mqtt_broker.port}"])
        addr = f"mqtt://127.0.0.1:{mqtt_broker.port}?client_id=spin-guest"
        for qos in ("0", "1", "2"):
            assert await call(running, "/mqtt", addr=addr, topic=f"spin/q{qos}", qos=qos) == (200, b"published")
        deadline = time.monotonic() + 10
        while len(received) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert sorted(received) == [(f"spin/q{q}", b"hello \x00\xff", q) for q in (0, 1, 2)]
        # rumqttc's rule: an address needs a client_id.
        status, out = await call_json(running, "/mqtt", addr=f"mqtt://127.0.0.1:{mqtt_broker.port}", topic="x")
        assert (status, out["error"]) == (500, "Error_InvalidAddress")
    finally:
        sub.loop_stop()
        sub.disconnect()


async def test_outbound_mqtt_max_connections_caps_the_apps_clients(
    rt: Runtime, wasm: Path, mqtt_broker: MosquittoBroker, tmp_path: Path
) -> None:
    """`[outbound_mqtt] max_connections = 1`: a publish as a second client id closes the first
    (idle) client to stay within the cap; the default cap of 10 would keep both connected."""
    from runtime.capabilities.mqtt import client as mqtt_client
    from runtime.runtime_config import RuntimeConfig
    from runtime.testing import component, loaded_app
    from runtime.types import AppSettings, MiB

    app = loaded_app(component("web", wasm, metadata={"allowed_outbound_hosts": [f"mqtt://127.0.0.1:{mqtt_broker.port}"]}),
                     name="capped-mqtt")
    config = RuntimeConfig(tmp_path / "runtime-config.toml", max_connections=(("outbound_mqtt", 1),))
    running = await rt.load_app(app, AppSettings(timeout_s=20.0, memory_bytes=256 * MiB, runtime_config=config,
                                                 app_name="capped-mqtt"))
    for client_id in ("cap-a", "cap-b"):
        addr = f"mqtt://127.0.0.1:{mqtt_broker.port}?client_id={client_id}"
        assert await call(running, "/mqtt", addr=addr, topic="spin/cap") == (200, b"published")
    clients = mqtt_client._by_app[id(app)]
    assert clients.limit == 1
    assert [t.client_id for t in clients._clients] == ["cap-b"]
    deadline = time.monotonic() + 10  # the broker sees cap-a go (closed off the request's thread)
    while "Client cap-a disconnected." not in mqtt_broker.log.read_text() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert "Client cap-a disconnected." in mqtt_broker.log.read_text()


# -- the allow-list ----------------------------------------------------------------------------


async def test_denied_addresses_open_no_connection(
    rt: Runtime,
    wasm: Path,
    redis_server: RedisServer,
    postgres_server: PostgresServer,
    mariadb_server: MariaDbServer,
    mqtt_broker: MosquittoBroker,
) -> None:
    # Allowed: the right hosts on other ports only (and a different scheme on the right port).
    running = await load(rt, wasm, ["redis://127.0.0.1:1", "postgres://localhost:5432", "mysql://127.0.0.1:2",
                                    f"http://127.0.0.1:{mqtt_broker.port}"])
    def all_counts() -> tuple[int, int, int, int]:
        return (redis_server.connections_received(), postgres_server.connections(), mariadb_server.connections(),
                mqtt_broker.connections())

    # The servers are shared by the session; PostgreSQL and mosquitto count from their logs, which
    # may still be catching up with an earlier test's connections. Start from counts that hold still.
    counts = all_counts()
    for _ in range(15):
        await asyncio.sleep(0.2)
        counts, previous = all_counts(), counts
        if counts == previous:
            break
    mqtt_addr = f"mqtt://127.0.0.1:{mqtt_broker.port}?client_id=denied"
    assert await call_json(running, "/open/redis", addr=redis_server.url) == (
        500, {"error": "Error_InvalidAddress", "value": ["Error_InvalidAddress"]})
    pg_denied = f"address postgres://127.0.0.1:{postgres_server.port} is not permitted"
    for version in ("pg2", "pg3", "pg4"):
        status, out = await call_json(running, f"/open/{version}", addr=postgres_server.url)
        assert (status, out["error"], out["value"][1]) == (500, "Error_ConnectionFailed", pg_denied)
    status, out = await call_json(running, "/open/mysql", addr=mariadb_server.url)
    assert (status, out["error"]) == (500, "Error_ConnectionFailed")
    assert out["value"][1].endswith("is not permitted")
    status, out = await call_json(running, "/mqtt", addr=mqtt_addr, topic="spin/denied")
    assert (status, out) == (500, {"error": "Error_ConnectionFailed",
                                   "value": ["Error_ConnectionFailed", f"address {mqtt_addr} is not permitted"]})
    # Malformed addresses get the interface's error value too.
    assert (await call_json(running, "/open/redis", addr="redis://"))[1]["error"] == "Error_InvalidAddress"
    assert (await call_json(running, "/open/pg4", addr="host=/tmp user=x"))[1]["error"] == "Error_ConnectionFailed"
    assert (await call_json(running, "/open/pg4", addr="postgres://u@127.0.0.1:1/db?service=x"))[1]["error"] == (
        "Error_ConnectionFailed")
    assert (await call_json(running, "/open/mysql", addr="not a url"))[1]["error"] == "Error_ConnectionFailed"
    await asyncio.sleep(0.2)  # let any (wrong) connection reach the servers' counters
    assert all_counts() == counts


async def test_connections_close_when_the_app_is_released(rt: Runtime, wasm: Path, redis_server: RedisServer) -> None:
    import gc

    def connected() -> int:
        return int(redis_server.client().info("clients")["connected_clients"])  # type: ignore[attr-defined]

    running = await load(rt, wasm, [f"redis://127.0.0.1:{redis_server.port}"], name="released")
    gc.collect()
    idle = connected()
    assert (await call(running, "/redis/get", addr=redis_server.url, key="nope"))[0] == 404
    assert connected() == idle + 1  # the pooled connection stays open between requests
    running.close()
    del running
    deadline = time.monotonic() + 10
    while connected() > idle and time.monotonic() < deadline:
        gc.collect()
        await asyncio.sleep(0.05)
    assert connected() == idle
