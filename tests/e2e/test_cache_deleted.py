"""Deleting the cache directory while serving (issue: the compiled cache stayed broken until a
restart, every later load logging `cannot write precompiled cache entry ... No such file`)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.server import RouterServer, hello_wasm, push_app_to, write_routes


def _routes(cache: Path, apps: dict[str, str]) -> str:
    text = f'[server]\ncache_dir = "{cache}"\n'
    for name, source in apps.items():
        text += f'\n[apps.{name}]\nsource = "{source}"\ninsecure = true\nhosts = ["{name}.test"]\n'
    return text


def test_cache_dir_deleted_while_serving_is_recreated(registry, router_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    one = push_app_to(registry.host, "cache-gone/one:v1", hello_wasm("cache one"), tmp_path)
    two = push_app_to(registry.host, "cache-gone/two:v1", hello_wasm("cache two"), tmp_path)
    cache = tmp_path / "cache"  # this test's own: it is deleted below
    routes = tmp_path / "routes.toml"
    routes.write_text(_routes(cache, {"one": one}))
    server: RouterServer = router_server(routes)
    server.wait_ready()
    assert server.get("/", host="one.test").text.startswith("cache one")

    shutil.rmtree(cache)
    write_routes(routes, _routes(cache, {"one": one, "two": two}))
    server.wait_for(lambda: (server.app_status("two") or {}).get("state") == "ready", 60, "app two ready")

    assert server.get("/", host="two.test").text.startswith("cache two")
    assert server.get("/", host="one.test").text.startswith("cache one")  # the neighbour never stopped
    compiled = cache / "compiled"
    assert sorted(p.suffix for p in compiled.iterdir() if not p.name.startswith(".")) == [".crc32", ".cwasm"]
    assert "cannot write precompiled cache entry" not in server.log()
    assert "recreating it" in server.log()
