"""A runtime config through `lepton-router serve`: two apps of a real Python spin-sdk app
(tests/fixtures/spin_py_kv) pulled from a registry keep their key-value stores in one real
redis-server, namespaced so neither sees the other's keys; an edit of a runtime config file alone
(watched, as routes.toml is) reloads the apps that name it, also for a file named by a later
routes.toml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

import registry as registry_module
from tests.support.db_servers import RedisServer
from tests.support.fixtures import FIXTURES_DIR, build_python_app
from tests.support.registry_apps import AppComponent, write_local_app
from tests.support.registry_server import RegistryServer
from tests.support.server import RouterServer, write_routes

pytestmark = pytest.mark.slow


def test_redis_key_value_through_the_router(
    registry: RegistryServer, router_server: Any, tmp_path: Path, router_cache_dir: Path, redis_server: RedisServer
) -> None:
    wasm = build_python_app(FIXTURES_DIR / "spin_py_kv").read_bytes()
    component = AppComponent(id="web", wasm=wasm, extra={"metadata": {"key_value_stores": ["default"]}})
    lock = write_local_app(tmp_path / "app", [component], name="py-kv", version="1.0.0")
    reference = f"{registry.host}/spin/py-kv:1.0.0"
    registry_module.push_app(lock, reference, insecure=True)

    runtime_config = tmp_path / "rc" / "redis.toml"
    runtime_config.parent.mkdir()
    runtime_config.write_text(f'[key_value_store.default]\ntype = "redis"\nurl = "{redis_server.url}"\n')
    routes = tmp_path / "routes.toml"
    routes.write_text(
        f'[server]\ncache_dir = "{router_cache_dir}"\nstate_dir = "{tmp_path / "state"}"\n\n'
        '[defaults]\nruntime_config = "rc/redis.toml"\n\n'
        f'[apps.a]\nsource = "{reference}"\ninsecure = true\nprefix = "/a"\n\n'
        f'[apps.b]\nsource = "{reference}"\ninsecure = true\nprefix = "/b"\n'
    )
    client: Any = redis_server.client()
    client.flushall()
    server: RouterServer = router_server(routes)
    server.wait_ready()

    stored = httpx.put(f"{server.base_url}/a/kv/default/color", content=b"teal", timeout=30)
    assert (stored.status_code, stored.text) == (200, "stored"), server.log()
    assert server.get("/a/kv/default/color").text == "teal"
    missing = server.get("/b/kv/default/color")
    assert (missing.status_code, missing.text) == (404, "missing")
    assert json.loads(server.get("/b/kv/default").text) == []
    assert client.keys("*") == [b"lepton:a:default:color"]
    assert not (tmp_path / "state" / "a" / "sqlite_key_value.db").exists()  # nothing went to SQLite

    # Opt out of the namespace (data shared with Spin): an edit of the file alone reloads the apps
    # (the server watches the runtime config files routes.toml names).
    client.set("plain", b"from spin")
    runtime_config.write_text(
        f'[key_value_store.default]\ntype = "redis"\nurl = "{redis_server.url}"\nkey_prefix = ""\n'
    )
    # Each app joins the table when its own load ends: wait for both.
    server.wait_for(
        lambda: all(server.get(f"/{app}/kv/default/plain").status_code == 200 for app in ("a", "b")),
        120,
        "both apps reloaded onto key_prefix = \"\"",
    )
    assert server.get("/b/kv/default/plain").text == "from spin"

    # b moves to a file of its own (a routes.toml edit); then an edit of that new file is watched too.
    own = tmp_path / "rc" / "b.toml"
    own.write_text(f'[key_value_store.default]\ntype = "redis"\nurl = "{redis_server.url}"\nkey_prefix = "b1:"\n')
    client.set("b1:k", b"one")
    client.set("b2:k", b"two")
    write_routes(routes, routes.read_text() + 'runtime_config = "rc/b.toml"\n')
    server.wait_for(lambda: server.get("/b/kv/default/k").text == "one", 120, "b reloaded onto rc/b.toml")
    own.write_text(f'[key_value_store.default]\ntype = "redis"\nurl = "{redis_server.url}"\nkey_prefix = "b2:"\n')
    server.wait_for(lambda: server.get("/b/kv/default/k").text == "two", 120, "b reloaded after an edit of rc/b.toml")
    assert server.get("/a/kv/default/plain").text == "from spin"
