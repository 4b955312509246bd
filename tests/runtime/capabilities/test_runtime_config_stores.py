"""Stores placed by an app's runtime config, with a real Python spin-sdk app (tests/fixtures/spin_py_kv):
Redis-backed key-value stores on a real redis-server (keys namespaced per app and store, so two apps
on one Redis never see each other's keys; `key_prefix = ""` gives Spin's plain keys), SQLite stores
and databases in files of their own, and the outbound Redis connection cap."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import Runtime
from runtime.runtime_config import KeyValueStoreConfig, RuntimeConfig, SqliteDatabaseConfig
from runtime.testing import component, loaded_app
from runtime.types import AppSettings, MiB
from tests.support.db_servers import RedisServer
from tests.support.fixtures import FIXTURES_DIR, build_python_app, cache_root
from tests.support.runtime_helpers import read, request

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wasm() -> Path:
    return build_python_app(FIXTURES_DIR / "spin_py_kv")


@pytest.fixture(scope="module")
def rt() -> Iterator[Runtime]:
    runtime = Runtime(cache_root() / "runtime-spin")
    yield runtime
    runtime.close()


async def _load(rt: Runtime, wasm: Path, name: str, redis_url: str, tmp_path: Path, key_prefix: str | None = None) -> Any:
    app = loaded_app(component("web", wasm, metadata={"key_value_stores": ["default", "other"]}), name="py-kv")
    config = RuntimeConfig(
        tmp_path / "runtime-config.toml",
        key_value_stores=(
            KeyValueStoreConfig("default", "redis", url=redis_url, key_prefix=key_prefix),
            KeyValueStoreConfig("other", "redis", url=redis_url, key_prefix=key_prefix),
        ),
    )
    settings = AppSettings(timeout_s=20.0, memory_bytes=256 * MiB, state_dir=tmp_path / name,
                           runtime_config=config, app_name=name)
    return await rt.load_app(app, settings)


async def get(running: Any, path: str, **kwargs: Any) -> tuple[int, bytes]:
    resp = await running.handle(request(path, **kwargs))
    return resp.status, await read(resp)


async def test_two_apps_on_one_redis_do_not_see_each_others_keys(
    rt: Runtime, wasm: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    alpha = await _load(rt, wasm, "alpha", redis_server.url, tmp_path)
    beta = await _load(rt, wasm, "beta", redis_server.url, tmp_path)

    assert await get(alpha, "/kv/default/k1", method="PUT", body=b"v\x00\xff1") == (200, b"stored")
    assert await get(alpha, "/kv/other/k2", method="PUT", body=b"x") == (200, b"stored")
    assert await get(alpha, "/kv/default/k1") == (200, b"v\x00\xff1")
    assert await get(beta, "/kv/default/k1") == (404, b"missing")
    assert json.loads((await get(alpha, "/kv/default"))[1]) == ["k1"]  # not "other"'s k2
    assert json.loads((await get(beta, "/kv/default"))[1]) == []

    assert await get(beta, "/kv/default/k1", method="PUT", body=b"beta's") == (200, b"stored")
    assert await get(alpha, "/kv/default/k1") == (200, b"v\x00\xff1")

    client: Any = redis_server.client()
    assert sorted(client.keys("*")) == [
        b"lepton:alpha:default:k1", b"lepton:alpha:other:k2", b"lepton:beta:default:k1"
    ]
    status, _ = await get(alpha, "/kv/default/k1", method="DELETE")
    assert status == 200
    assert await get(alpha, "/kv/default/k1") == (404, b"missing")
    assert await get(beta, "/kv/default/k1") == (200, b"beta's")


async def test_empty_key_prefix_shares_spins_plain_keys(
    rt: Runtime, wasm: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    client: Any = redis_server.client()
    client.flushall()
    client.set("written-by-spin", b"hi")
    shared = await _load(rt, wasm, "shared", redis_server.url, tmp_path, key_prefix="")
    assert await get(shared, "/kv/default/written-by-spin") == (200, b"hi")
    assert json.loads((await get(shared, "/kv/default"))[1]) == ["written-by-spin"]


async def test_wasi_keyvalue_on_redis(rt: Runtime, wasm: Path, redis_server: RedisServer, tmp_path: Path) -> None:
    app = await _load(rt, wasm, "wasi", redis_server.url, tmp_path)
    status, body = await get(app, "/wkv")
    assert status == 200, body
    out = json.loads(body)
    assert out["get_a"] == "1" and out["exists_a"] is True and out["incr"] == [5, 3]
    assert out["get_many"] == [["a", "1"], ["b", "2"]]
    assert out["cas_current"] == "1" and out["after_swap"] == "swapped"  # WATCH/MULTI/EXEC
    assert out["keys"] == ["a"]


async def test_spin_store_with_a_path_uses_its_own_file(rt: Runtime, wasm: Path, tmp_path: Path) -> None:
    import sqlite3

    app = loaded_app(component("web", wasm, metadata={"key_value_stores": ["default", "other"]}), name="py-kv")
    file = tmp_path / "elsewhere" / "other.db"
    config = RuntimeConfig(tmp_path / "runtime-config.toml",
                           key_value_stores=(KeyValueStoreConfig("other", "spin", path=file),))
    running = await rt.load_app(app, AppSettings(timeout_s=20.0, memory_bytes=256 * MiB, state_dir=tmp_path / "state",
                                                 runtime_config=config, app_name="files"))
    assert await get(running, "/kv/other/k", method="PUT", body=b"in other.db") == (200, b"stored")
    assert await get(running, "/kv/default/d", method="PUT", body=b"in the state dir") == (200, b"stored")
    with sqlite3.connect(file) as conn:
        assert conn.execute("SELECT store, key, value FROM spin_key_value").fetchall() == [
            ("other", "k", b"in other.db")
        ]
    with sqlite3.connect(tmp_path / "state" / "sqlite_key_value.db") as conn:
        assert conn.execute("SELECT store, key FROM spin_key_value").fetchall() == [("default", "d")]


async def _load_on_redis(rt: Runtime, wasm: Path, redis_server: RedisServer, tmp_path: Path, name: str,
                         **config: Any) -> tuple[Any, Any]:
    """The key-value app with its default store on Redis and these other runtime config fields:
    (the LoadedApp, the running app)."""
    app = loaded_app(component("web", wasm, metadata={"key_value_stores": ["default"]}), name="py-kv")
    runtime_config = RuntimeConfig(
        tmp_path / "runtime-config.toml",
        key_value_stores=(KeyValueStoreConfig("default", "redis", url=redis_server.url),),
        **config,
    )
    running = await rt.load_app(app, AppSettings(timeout_s=20.0, memory_bytes=256 * MiB,
                                                 runtime_config=runtime_config, app_name=name))
    return app, running


async def test_outbound_redis_max_connections_caps_the_apps_pool(
    rt: Runtime, wasm: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    from runtime.capabilities.outbound_db import pool

    app, running = await _load_on_redis(rt, wasm, redis_server, tmp_path, "capped",
                                        max_connections=(("outbound_redis", 2),))
    assert await get(running, "/kv/default/k", method="PUT", body=b"v") == (200, b"stored")
    redis_pool = pool._pools[(id(app), "redis", True)]  # the app's key-value Redis pool, made by that request
    assert redis_pool.limit == 2


async def test_a_redis_store_the_operator_configured_is_not_subject_to_block_networks(
    rt: Runtime, wasm: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    # block_networks keeps the guest's own addresses off private networks; the operator's
    # key-value Redis lives there (here on loopback, which "private" covers), as in Spin.
    from runtime.capabilities.support.blocked_networks import BlockedNetworks

    _, running = await _load_on_redis(rt, wasm, redis_server, tmp_path, "fenced",
                                      blocked_networks=BlockedNetworks.parse(["private", "127.0.0.0/8"]))
    assert await get(running, "/kv/default/k", method="PUT", body=b"v") == (200, b"stored")
    assert await get(running, "/kv/default/k") == (200, b"v")


async def test_sqlite_database_with_a_path_uses_that_file(rt: Runtime, wasm: Path, tmp_path: Path) -> None:
    import sqlite3

    app = loaded_app(component("web", wasm, metadata={"databases": ["default"]}), name="py-kv")
    file = tmp_path / "elsewhere" / "app.db"
    file.parent.mkdir()
    config = RuntimeConfig(tmp_path / "runtime-config.toml", sqlite_databases=(SqliteDatabaseConfig("default", file),))
    running = await rt.load_app(app, AppSettings(timeout_s=20.0, memory_bytes=256 * MiB, state_dir=tmp_path / "state",
                                                 runtime_config=config, app_name="db"))
    assert await get(running, "/sql") == (200, b"1")
    assert await get(running, "/sql") == (200, b"2")
    with sqlite3.connect(file) as conn:
        assert conn.execute("SELECT COUNT(*) FROM hits").fetchone() == (2,)
    assert not (tmp_path / "state" / "sqlite_db.db").exists()
