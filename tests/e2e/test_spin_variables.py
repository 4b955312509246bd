"""Conformance-style variables test through the real `lepton-router serve` process: a required
(secret) variable supplied only by SPIN_VARIABLE_<NAME> in the router's environment; without it
the load fails and the status page names the app and the variable; the value never shows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

import registry
from tests.support.fixtures import FIXTURES_DIR, build_c_component
from tests.support.registry_server import RegistryServer
from tests.support.server import RouterServer

SRC = FIXTURES_DIR / "spin_c_inbound"
SECRET = "s3cr3t-token-value"


def push_vars_app(registry_server: RegistryServer, work: Path) -> str:
    """A one-component app (the C inbound-http handler) whose `token` config needs `api_token`."""
    wasm = build_c_component(SRC / "handler.c", world="spin-inbound", wit=SRC / "world.wit")
    app_dir = work / "vars-app"
    app_dir.mkdir()
    lock: dict[str, Any] = {
        "spin_lock_version": 0,
        "metadata": {"name": "vars-app", "version": "1.0.0", "trigger": {"type": "http"}, "triggers": {"http": {}}},
        "variables": {"api_token": {"secret": True}, "greeting": {"default": "hello"}},
        "triggers": [
            {"id": "web-http-trigger", "trigger_type": "http", "trigger_config": {"component": "web", "route": "/..."}}
        ],
        "components": [
            {
                "id": "web",
                "source": {"content_type": "application/wasm", "source": wasm.resolve().as_uri()},
                "config": {"token": "{{ api_token }}", "greeting": "{{ greeting }}"},
            }
        ],
    }
    lockfile = app_dir / "spin.lock"
    lockfile.write_text(json.dumps(lock))
    reference = f"{registry_server.host}/spin/vars-app:v1"
    registry.push_app(lockfile, reference, insecure=True)
    return reference


def routes_file(work: Path, reference: str, cache_dir: Path, name: str) -> Path:
    routes = work / f"{name}.toml"
    routes.write_text(f"""
[server]
cache_dir = "{cache_dir}"
state_dir = "{work / name}-state"

[apps.vars]
source = "{reference}"
insecure = true
prefix = "/vars"
""")
    return routes


def test_required_variable_from_environment_or_named_load_failure(
    registry: RegistryServer, tmp_path: Path, router_cache_dir: Path
) -> None:
    reference = push_vars_app(registry, tmp_path)

    missing = RouterServer(routes_file(tmp_path, reference, router_cache_dir, "missing"))
    missing.start()
    try:
        missing.wait_for(lambda: (missing.app_status("vars") or {}).get("state") == "failed", 120, "load failure")
        status = missing.app_status("vars")
        assert status is not None and "api_token" in str(status["error"]) and "vars-app" in str(status["error"])
        page = httpx.get(missing.admin_url + "/plain", timeout=5.0).text  # (what the live page draws from status.json)
        assert "api_token" in page and "SPIN_VARIABLE_API_TOKEN" in page
        assert missing.get("/vars/config/token").status_code != 200
    finally:
        missing.stop()

    supplied = RouterServer(
        routes_file(tmp_path, reference, router_cache_dir, "supplied"), env={"SPIN_VARIABLE_API_TOKEN": SECRET}
    )
    supplied.start()
    try:
        supplied.wait_ready()
        response = supplied.get("/vars/config/token")
        assert (response.status_code, response.text) == (200, SECRET), supplied.log()
        assert supplied.get("/vars/config/greeting").text == "hello"
        # Secrets never reach the status page or the logs.
        assert SECRET not in httpx.get(supplied.admin_url + "/plain", timeout=5.0).text
        assert SECRET not in json.dumps(supplied.status())
        assert SECRET not in supplied.log()
    finally:
        supplied.stop()


@pytest.fixture(autouse=True)
def _need_registry(registry: RegistryServer) -> None:
    """The registry fixture comes from tests/conftest.py (tests/support/registry_server.py)."""
