"""Key-value and sqlite data of a real Python spin-sdk app survive a hot swap to a new version and
a restart of `lepton-router serve` (the app's state dir under [server] state_dir)."""

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

pytestmark = pytest.mark.slow


def push_version(registry_server: RegistryServer, work: Path, wasm: bytes, version: str) -> str:
    component = AppComponent(
        id="web",
        wasm=wasm,
        extra={"metadata": {"key_value_stores": ["default"], "databases": ["default"]}},
    )
    lock = write_local_app(work / f"py-{version}", [component], name="py-state", version=version)
    reference = f"{registry_server.host}/spin/py-state:{version}"
    registry.push_app(lock, reference, insecure=True)
    return reference


def routes(cache_dir: Path, state_dir: Path, source: str) -> str:
    return f"""
[server]
cache_dir = "{cache_dir}"
state_dir = "{state_dir}"

[apps.py]
source = "{source}"
insecure = true
prefix = "/py"
"""


def test_state_survives_swap_and_restart(
    registry: RegistryServer, router_server, tmp_path: Path, router_cache_dir: Path  # type: ignore[no-untyped-def]
) -> None:
    wasm = build_python_app(FIXTURES_DIR / "spin_py_kv").read_bytes()
    v1 = push_version(registry, tmp_path, wasm, "1.0.0")
    v2 = push_version(registry, tmp_path, wasm, "2.0.0")
    routes_path = tmp_path / "routes.toml"
    state = tmp_path / "state"
    routes_path.write_text(routes(router_cache_dir, state, v1))

    server: RouterServer = router_server(routes_path)
    server.wait_ready()
    absent = server.get("/py/kv/default/color")
    assert (absent.status_code, absent.text) == (404, "missing"), server.log()
    stored = httpx.put(f"{server.base_url}/py/kv/default/color", content=b"teal", timeout=30)
    assert (stored.status_code, stored.text) == (200, "stored"), server.log()
    assert server.get("/py/sql").text == "1"

    write_routes(routes_path, routes(router_cache_dir, state, v2))
    server.wait_for(
        lambda: ((server.app_status("py") or {}).get("version") or {}).get("app_version") == "2.0.0", 120, "swap to v2"
    )
    assert server.get("/py/kv/default/color").text == "teal"
    assert server.get("/py/sql").text == "2"
    server.stop()

    restarted: RouterServer = router_server(routes_path)
    restarted.wait_ready()
    assert restarted.get("/py/kv/default/color").text == "teal"
    assert json.loads(restarted.get("/py/kv/default").text) == ["color"]
    assert restarted.get("/py/sql").text == "3"
    assert (state / "py" / "sqlite_key_value.db").is_file()
