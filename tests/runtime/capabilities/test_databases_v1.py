"""The unversioned Spin 1.x database interfaces (`fermyon:spin/redis`, `postgres`, `mysql`:
every call names its address). No SDK that builds components imports them any more, so their
host functions are called directly, inside a request context of a loaded app, against the real
servers (tests/support/db_servers.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from wasmtime.component import Variant

from runtime import Runtime
from runtime.capabilities.mysql.host import MysqlCapability
from runtime.capabilities.postgres.host import PostgresCapability
from runtime.capabilities.redis.host import RedisCapability
from runtime.core.context import bind
from tests.support.db_apps import db_wasm, load
from tests.support.db_servers import MariaDbServer, PostgresServer, RedisServer
from tests.support.fixtures import cache_root

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rt() -> Iterator[Runtime]:
    runtime = Runtime(cache_root() / "runtime-spin")
    yield runtime
    runtime.close()


def plain(value: Any) -> Any:
    """Case / Variant / Record values as tuples and dicts, for comparing."""
    if hasattr(value, "tag"):
        return (value.tag, plain(value.payload))
    if isinstance(value, list):
        return [plain(v) for v in value]
    if hasattr(value, "__dict__") and type(value).__name__ == "Record":
        return {k: plain(v) for k, v in vars(value).items()}
    return value


async def host_calls(rt: Runtime, allowed: list[str]) -> Callable[[Callable[[], Any]], Any]:
    running = await load(rt, db_wasm(), allowed, name="spin1")
    guest = running.slots["web"].guest

    def within_request(fn: Callable[[], Any]) -> Any:
        ctx = guest.new_context(time.monotonic() + 10)
        try:
            with bind(ctx):
                return plain(fn())
        finally:
            ctx.close()

    return within_request


async def test_spin1_redis(rt: Runtime, redis_server: RedisServer) -> None:
    run = await host_calls(rt, [f"redis://127.0.0.1:{redis_server.port}"])
    f = RedisCapability().implement("fermyon:spin/redis", None).funcs
    url = redis_server.url
    assert run(lambda: f["set"](None, url, "v1", b"x\x00")) == ("ok", None)
    assert run(lambda: f["get"](None, url, "v1")) == ("ok", b"x\x00")
    assert run(lambda: f["get"](None, url, "v1-missing")) == ("ok", b"")  # Spin 1.x: empty, not an error
    assert run(lambda: f["incr"](None, url, "v1-n")) == ("ok", 1)
    assert run(lambda: f["sadd"](None, url, "v1-s", ["a", "b"])) == ("ok", 2)
    assert run(lambda: sorted(f["smembers"](None, url, "v1-s").payload)) == ["a", "b"]
    assert run(lambda: f["srem"](None, url, "v1-s", ["a"])) == ("ok", 1)
    assert run(lambda: f["execute"](None, url, "PING", [])) == ("ok", [("status", "PONG")])
    assert run(lambda: f["publish"](None, url, "v1-channel", b"m")) == ("ok", None)
    assert run(lambda: f["del"](None, url, ["v1", "v1-n", "v1-s"])) == ("ok", 3)
    assert run(lambda: f["incr"](None, url, "v1-s-missing-type")) == ("ok", 1)
    # Every failure is the enum `error`: a server error, and a denied address (no connection).
    assert run(lambda: f["sadd"](None, url, "v1-s-missing-type", ["x"])) == ("err", "error")
    before = redis_server.connections_received()
    assert run(lambda: f["get"](None, "redis://127.0.0.1:1", "k")) == ("err", "error")
    assert redis_server.connections_received() == before


async def test_spin1_postgres(rt: Runtime, postgres_server: PostgresServer) -> None:
    run = await host_calls(rt, [f"postgres://127.0.0.1:{postgres_server.port}"])
    f = PostgresCapability().implement("fermyon:spin/postgres", None).funcs
    url = postgres_server.url
    assert run(lambda: f["execute"](None, url, "DROP TABLE IF EXISTS spin1", [])) == ("ok", 0)
    assert run(lambda: f["execute"](None, url, "CREATE TABLE spin1 (a int4, b text, c bytea)", [])) == ("ok", 0)
    params = [Variant("int32", 5), Variant("str", "x"), Variant("db-null")]
    assert run(lambda: f["execute"](None, url, "INSERT INTO spin1 VALUES ($1, $2, $3)", params)) == ("ok", 1)
    assert run(lambda: f["query"](None, url, "SELECT a, b, c, now()::date AS d FROM spin1", [])) == (
        "ok",
        {
            "columns": [{"name": "a", "data-type": "int32"}, {"name": "b", "data-type": "str"},
                        {"name": "c", "data-type": "binary"}, {"name": "d", "data-type": "other"}],
            "rows": [[("int32", 5), ("str", "x"), ("db-null", None), ("unsupported", None)]],
        },
    )
    unsigned = run(lambda: f["execute"](None, url, "SELECT $1", [Variant("uint8", 1)]))
    assert unsigned == ("err", ("value-conversion-failed", "Postgres does not support unsigned integers"))
    failed = run(lambda: f["query"](None, url, "SELECT * FROM nope", []))
    assert failed[0] == "err" and failed[1][0] == "query-failed" and "does not exist" in failed[1][1]
    before = postgres_server.connections()
    denied = run(lambda: f["query"](None, "postgres://u@127.0.0.1:1/db", "SELECT 1", []))
    assert denied == ("err", ("connection-failed", "address postgres://127.0.0.1:1 is not permitted"))
    assert postgres_server.connections() == before


async def test_spin1_mysql(rt: Runtime, mariadb_server: MariaDbServer) -> None:
    run = await host_calls(rt, [f"mysql://127.0.0.1:{mariadb_server.port}"])
    f = MysqlCapability().implement("fermyon:spin/mysql", None).funcs
    url = mariadb_server.url
    assert run(lambda: f["execute"](None, url, "DROP TABLE IF EXISTS spin1", [])) == ("ok", None)
    assert run(lambda: f["execute"](None, url, "CREATE TABLE spin1 (a INT UNSIGNED, b VARCHAR(9))", [])) == ("ok", None)
    params = [Variant("uint32", 7), Variant("str", "y")]
    assert run(lambda: f["execute"](None, url, "INSERT INTO spin1 VALUES (?, ?)", params)) == ("ok", None)
    assert run(lambda: f["query"](None, url, "SELECT a, b FROM spin1", [])) == (
        "ok",
        {"columns": [{"name": "a", "data-type": "uint32"}, {"name": "b", "data-type": "str"}],
         "rows": [[("uint32", 7), ("str", "y")]]},
    )
    failed = run(lambda: f["query"](None, url, "SELECT * FROM nope", []))
    assert failed == ("err", ("query-failed", "Table 'spin.nope' doesn't exist (error 1146)"))
    before = mariadb_server.connections()
    denied = run(lambda: f["query"](None, "mysql://u:p@127.0.0.1:1/db", "SELECT 1", []))
    assert denied == ("err", ("connection-failed", "address mysql://u:p@127.0.0.1:1/db is not permitted"))
    assert mariadb_server.connections() == before


def test_spin1_error_case_names(rt: Runtime) -> None:
    # The Spin 1.x rdbms errors call `other` `other-error`.
    from runtime.capabilities.outbound_db.rdbms import DbError, ErrorKind, Version, lower_error

    assert plain(lower_error(DbError(ErrorKind.OTHER, "m"), Version.V1)) == ("other-error", "m")
    assert plain(lower_error(DbError(ErrorKind.OTHER, "m"), Version.V2)) == ("other", "m")
