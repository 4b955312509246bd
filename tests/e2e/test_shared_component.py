"""Tenants of one component, through a real `lepton-router serve`: three apps run the same wasm
(one digest, so one compiled component and one Linker in the server) and still keep their own
variables, key-value data and allowed outbound hosts; removing two of them leaves the third
serving, and adding one back links it again."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

import registry
from tests.support.fixtures import FIXTURES_DIR, build_python_app
from tests.support.registry_apps import AppComponent, write_local_app
from tests.support.registry_server import RegistryServer
from tests.support.server import RouterServer, write_routes
from tests.support.upstream import Upstream

pytestmark = pytest.mark.slow


def push(registry_server: RegistryServer, work: Path, wasm: bytes, tag: str, allowed: list[str]) -> str:
    component = AppComponent(
        id="web",
        wasm=wasm,
        extra={
            "metadata": {"key_value_stores": ["default"], "allowed_outbound_hosts": allowed},
            "config": {"greeting": "{{ greeting }}"},
        },
    )
    lock = write_local_app(work / tag, [component], name="tenant", version="1.0.0")
    locked = json.loads(lock.read_text())
    locked["variables"] = {"greeting": {"default": "hello"}}
    lock.write_text(json.dumps(locked))
    reference = f"{registry_server.host}/spin/tenant:{tag}"
    registry.push_app(lock, reference, insecure=True)
    return reference


def routes(cache_dir: Path, state_dir: Path, apps: dict[str, str]) -> str:
    text = f'[server]\ncache_dir = "{cache_dir}"\nstate_dir = "{state_dir}"\n'
    for name, source in apps.items():
        text += (f'\n[apps.{name}]\nsource = "{source}"\ninsecure = true\nprefix = "/{name}"\n'
                 f'variables = {{ greeting = "from-{name}" }}\n')
    return text


def test_tenants_of_one_component_keep_their_own_state(
    registry: RegistryServer, router_server, upstream: Upstream, tmp_path: Path, router_cache_dir: Path  # type: ignore[no-untyped-def]
) -> None:
    wasm = build_python_app(FIXTURES_DIR / "spin_py_kv").read_bytes()
    open_source = push(registry, tmp_path, wasm, "open", [f"http://127.0.0.1:{upstream.port}"])
    closed_source = push(registry, tmp_path, wasm, "closed", [])
    routes_path = tmp_path / "routes.toml"
    state = tmp_path / "state"
    apps = {"a": open_source, "b": open_source, "c": closed_source}
    routes_path.write_text(routes(router_cache_dir, state, apps))
    server: RouterServer = router_server(routes_path)
    server.wait_ready()

    for name in apps:
        assert server.get(f"/{name}/var/greeting").text == f"from-{name}", server.log()
    stored = httpx.put(f"{server.base_url}/a/kv/default/k", content=b"only a", timeout=30)
    assert (stored.status_code, stored.text) == (200, "stored"), server.log()
    assert (server.get("/b/kv/default/k").status_code, server.get("/c/kv/default/k").status_code) == (404, 404)
    url = f"http://127.0.0.1:{upstream.port}/x"
    assert server.get("/a/out", params={"url": url}).text == "201 echo:"
    denied = server.get("/c/out", params={"url": url})
    assert (denied.status_code, denied.text) == (502, "ErrorCode_HttpRequestDenied")
    assert len(upstream.requests) == 1

    # Remove a and b (their shared component stays with c): c serves on, its state untouched.
    write_routes(routes_path, routes(router_cache_dir, state, {"c": closed_source}))
    server.wait_for(lambda: server.get("/a/var/greeting").status_code == 404, 60, "a removed")
    assert server.get("/c/var/greeting").text == "from-c"
    assert server.get("/c/kv/default/k").status_code == 404
    # And b comes back: linked again, with its own data.
    write_routes(routes_path, routes(router_cache_dir, state, {"b": open_source, "c": closed_source}))
    server.wait_for(lambda: server.get("/b/var/greeting").text == "from-b", 60, "b back")
    assert server.get("/b/kv/default/k").status_code == 404
    assert server.get("/a/kv/default/k").status_code == 404
    assert server.get("/c/var/greeting").text == "from-c"
