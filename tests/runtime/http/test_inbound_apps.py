"""The fermyon:spin/inbound-http executor (a C component) and Spin 1.x core modules (the same C
handler on the wit-bindgen 0.2 ABI), the latter pulled from a Spin v1-layout registry artifact."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registry import load_app
from registry.locked import Variable
from runtime import Runtime
from runtime.testing import component, loaded_app
from runtime.types import AppSettings, MiB
from tests.support.fixtures import FIXTURES_DIR, build_c_component, build_c_core_module
from tests.support.registry_server import RegistryServer
from tests.support.runtime_helpers import read, request
from tests.support.upstream import Upstream

SRC = FIXTURES_DIR / "spin_c_inbound"
SETTINGS = AppSettings(timeout_s=20.0, memory_bytes=64 * MiB, variables={"greeting": "hi there"})


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    runtime = Runtime(tmp_path_factory.mktemp("inbound-rt"))
    yield runtime
    runtime.close()


def inbound_component() -> Path:
    return build_c_component(SRC / "handler.c", world="spin-inbound", wit=SRC / "world.wit")


def spin1_module() -> Path:
    return build_c_core_module(SRC / "handler.c", exec_model="reactor", cflags=["-DSPIN1_MODULE"])


def header_values(resp: Any, name: str) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else v for k, v in resp.headers if k == name]


async def call(running: Any, path: str, **kwargs: Any) -> tuple[int, str, Any]:
    resp = await running.handle(request(path, **kwargs))
    return resp.status, (await read(resp)).decode(), resp


async def check_handler(running: Any, upstream: Upstream) -> None:
    """What both ABIs must do identically."""
    status, body, resp = await call(running, "/hello", query="x=1", method="POST", body=b"payload")
    assert status == 200
    lines = body.splitlines()
    assert lines[0] == "method=POST uri=/hello?x=1 body=payload"
    assert "h:spin-full-url=http://example.com/hello?x=1" in lines
    assert "h:spin-path-info=/hello" in lines
    assert "h:host=example.com" in lines
    assert header_values(resp, "x-dup") == ["2"]  # inserted: the last value wins
    assert header_values(resp, "content-type") == ["text/plain"]

    assert (await call(running, "/x", method="PROPFIND"))[0] == 405
    assert (await call(running, "/status/204"))[0] == 204
    assert (await call(running, "/status/600"))[0] == 600
    for bad in ("/status/99", "/status/601"):
        status, body, _ = await call(running, bad)
        assert (status, body) == (500, "")

    assert (await call(running, "/config/greeting"))[:2] == (200, "hi there")
    status, body, _ = await call(running, "/config/Bad-Key")
    assert status == 500 and body.startswith("error invalid-key ")
    status, body, _ = await call(running, "/config/unknown")
    assert status == 500 and body.startswith("error provider ")

    # key-value through the unversioned (component) / `key-value` (Spin 1.x module) interface
    assert (await call(running, "/kv/default/k1", method="PUT", body=b"v1"))[:2] == (200, "stored")
    assert (await call(running, "/kv/default/k2", method="PUT", body=b"v2"))[:2] == (200, "stored")
    assert (await call(running, "/kv/default/k1"))[:2] == (200, "value v1")
    assert (await call(running, "/kv/default/*"))[:2] == (200, "keys k1,k2")
    assert (await call(running, "/kv/default/none"))[:2] == (500, "kv-error no-such-key")
    assert (await call(running, "/kv/private/k1"))[:2] == (500, "kv-error access-denied")

    status, body, _ = await call(running, f"/fetch?http://127.0.0.1:{upstream.port}/ok")
    assert (status, body) == (200, "upstream 201 echo:")
    assert upstream.requests[-1][2].get("x-from-guest") == "spin1"
    seen = len(upstream.requests), upstream.connections
    status, body, _ = await call(running, f"/fetch?http://localhost:{upstream.port}/no")
    assert (status, body) == (502, "http-error 1")  # destination-not-allowed
    assert (len(upstream.requests), upstream.connections) == seen


async def test_inbound_http_component(rt: Runtime, upstream: Upstream) -> None:
    app = loaded_app(
        component(
            "web",
            inbound_component(),
            config={"greeting": "{{ greeting }}"},
            metadata={"allowed_outbound_hosts": [f"http://127.0.0.1:{upstream.port}"], "key_value_stores": ["default"]},
        ),
        name="inbound",
        variables={"greeting": Variable(default="unused default")},
    )
    running = await rt.load_app(app, SETTINGS)
    await check_handler(running, upstream)


async def test_spin1_module_locally(rt: Runtime, upstream: Upstream) -> None:
    app = loaded_app(
        component(
            "web",
            spin1_module(),
            config={"greeting": "{{ greeting }}"},
            metadata={"allowed_http_hosts": [f"127.0.0.1:{upstream.port}"], "key_value_stores": ["default"]},
        ),
        name="spin1",
        variables={"greeting": Variable()},
    )
    running = await rt.load_app(app, SETTINGS)
    await check_handler(running, upstream)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_spin1_app(registry: RegistryServer, repo: str, wasm: bytes, upstream_port: int) -> None:
    """The layout Spin 1.x pushes (SIP 008): the lock is the config blob, one wasm layer."""
    lock = {
        "spin_lock_version": 0,
        "metadata": {"name": "spin1-app", "version": "0.1.0", "trigger": {"base": "/", "type": "http"}},
        "variables": {"greeting": {"default": "from the lock"}},
        "triggers": [
            {"id": "trigger--web", "trigger_type": "http",
             "trigger_config": {"component": "web", "executor": None, "route": "/..."}}
        ],
        "components": [
            {
                "id": "web",
                "metadata": {"allowed_http_hosts": [f"127.0.0.1:{upstream_port}"], "key_value_stores": ["default"],
                             "databases": []},
                "source": {"content_type": "application/wasm", "digest": sha(wasm)},
                "config": {"greeting": "{{ greeting }}"},
            }
        ],
    }
    config = {"mediaType": "application/vnd.fermyon.spin.application.v1+config",
              **registry.put_blob(repo, json.dumps(lock).encode())}
    layer = {"mediaType": "application/vnd.wasm.content.layer.v1+wasm", **registry.put_blob(repo, wasm)}
    manifest = json.dumps({"schemaVersion": 2, "config": config, "layers": [layer]}).encode()
    registry.put_manifest(repo, "v1", manifest, "application/vnd.oci.image.manifest.v1+json")


async def test_spin1_module_from_a_v1_registry_artifact(
    rt: Runtime, registry: RegistryServer, upstream: Upstream, tmp_path: Path
) -> None:
    push_spin1_app(registry, "spin/v1-module", spin1_module().read_bytes(), upstream.port)
    loaded = await asyncio.to_thread(
        load_app, f"{registry.host}/spin/v1-module:v1", cache_dir=tmp_path / "cache", insecure=True
    )
    running = await rt.load_app(loaded, SETTINGS)
    await check_handler(running, upstream)
    # Without a routes.toml value the lock's default applies.
    defaults = await rt.load_app(loaded, AppSettings(timeout_s=20.0, memory_bytes=64 * MiB))
    assert (await call(defaults, "/config/greeting"))[:2] == (200, "from the lock")


async def test_an_inbound_http_component_runs_inline_once_cheap(rt: Runtime) -> None:
    """The inbound-http executor reads the whole body before the guest runs; a body already read
    ahead is no wait, so a cheap request runs inline (a wait would give every inline run up)."""
    app = loaded_app(
        component("web", inbound_component(), config={"greeting": "{{ greeting }}"},
                  metadata={"key_value_stores": ["default"]}),
        name="inbound-inline",
        variables={"greeting": Variable(default="unused default")},
    )
    running = await rt.load_app(app, SETTINGS)
    slot = running.slots["web"]
    slot.recent = (0.0001,) * 4  # stand in for recent cheap runs
    status, _, _ = await call(running, "/status/201", method="POST", body=b"ahead")
    assert status == 201
    assert slot.inline_runs == 1 and slot.may_inline
