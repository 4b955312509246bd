"""End to end, issue 11: a registry that hangs (item 2) and a damaged cached blob (item 4), against a
real `lepton-router serve` subprocess, the real test registry and a peer on loopback that accepts
connections and never answers."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.hostile_registry import HangingListener
from tests.support.registry_server import RegistryServer
from tests.support.server import REPO, RouterServer, hello_wasm, push_app_to, registry_routes, write_routes

READ_TIMEOUT_S = 6


@pytest.fixture
def hanging() -> Iterator[HangingListener]:
    with HangingListener() as listener:
        yield listener


def _ready(server: RouterServer) -> httpx.Response:
    return server.get("/.well-known/lepton/ready")


def test_hung_registry_holds_up_nothing(router_server, registry: RegistryServer, hanging: HangingListener,  # type: ignore[no-untyped-def]
                                        tmp_path: Path, router_cache_dir: Path) -> None:
    good = push_app_to(registry.host, "hang/good:v1", hello_wasm("good"), tmp_path)
    hung = f"{hanging.host}/hang/app:v1"
    limits = (f'registry_connect_timeout = "2s"\nregistry_read_timeout = "{READ_TIMEOUT_S}s"\n'
              'registry_deadline = "30s"\n')
    routes = tmp_path / "routes.toml"
    routes.write_text(registry_routes(router_cache_dir, {"good": (good, "good.test"), "hung": (hung, "hung.test")}, limits))
    started = time.monotonic()
    server: RouterServer = router_server(routes)

    # 1. The other app serves while the hung one is still loading: the first table does not wait.
    seen: dict[str, object] = {}

    def good_serves_while_hung_loads() -> bool:
        if server.get("/", host="good.test").text != "good           \n":
            return False
        seen["hung"] = server.app_status("hung")["state"]  # type: ignore[index]
        seen["at"] = time.monotonic() - started
        return True

    server.wait_for(good_serves_while_hung_loads, 30, "the good app to serve")
    assert seen["hung"] == "loading", f"good served only once hung was {seen['hung']} ({seen['at']:.1f}s)"
    assert hanging.accepted, "the server never connected to the hung registry"

    # 2. /ready goes 200 once the hung app is reported failed, within its read timeout.
    server.wait_for(lambda: _ready(server).status_code == 200, READ_TIMEOUT_S + 15, "/ready")
    hung_status = server.app_status("hung")
    assert hung_status is not None and hung_status["state"] == "failed"
    assert f"did not answer within {READ_TIMEOUT_S}s" in hung_status["error"], hung_status["error"]
    assert _ready(server).json()["apps"] == {"failed": 1, "ready": 1}
    assert server.get("/", host="hung.test").status_code == 404
    assert server.get("/", host="good.test").status_code == 200

    # 3. A later edit applies at once, while the hung app's retry (every edit retries it) hangs.
    connections = len(hanging.accepted)
    write_routes(routes, registry_routes(router_cache_dir, {"good": (good, "moved.test"), "hung": (hung, "hung.test")}, limits))
    edited = time.monotonic()
    server.wait_for(lambda: server.get("/", host="moved.test").status_code == 200, READ_TIMEOUT_S - 1,
                    "the edit to apply while a load hangs")
    assert time.monotonic() - edited < READ_TIMEOUT_S - 1
    server.wait_for(lambda: len(hanging.accepted) > connections, 10, "the retry to connect")
    assert server.get("/", host="good.test").status_code == 404  # moved
    assert _ready(server).status_code == 200  # a retry of a failed app does not flip readiness

    # 4. `lepton-router pull` of the hung reference ends with a clear error within its deadline.
    pull_started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "router.cli", "pull", hung, "--insecure", "--cache-dir", str(tmp_path / "pull-cache"),
         "--read-timeout", "2s", "--deadline", "5s"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    elapsed = time.monotonic() - pull_started
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert f"error: {hung}: registry {hanging.host} accepted the connection but did not answer within 2s" \
        in result.stderr, result.stderr[-2000:]
    assert elapsed < 15, elapsed
    assert server.get("/", host="moved.test").text == "good           \n"  # the neighbour, still


def _damage_in_place(path: Path, old: bytes, new: bytes) -> None:
    assert len(old) == len(new)
    data = path.read_bytes()
    assert data.count(old) == 1
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    path.write_bytes(data.replace(old, new))
    os.chmod(path, 0o444)


def test_wasm_damaged_in_the_cache_is_never_run(router_server, registry: RegistryServer,  # type: ignore[no-untyped-def]
                                                tmp_path: Path) -> None:
    """The attack from the issue: damage a cached wasm in place (same length), remove the compiled
    cache, restart. The old code ran the damaged bytes; now they are replaced before anything runs."""
    wasm = hello_wasm("intact reply")
    victim = push_app_to(registry.host, "damage/victim:v1", wasm, tmp_path)
    neighbour = push_app_to(registry.host, "damage/neighbour:v1", hello_wasm("neighbour"), tmp_path)
    cache = tmp_path / "cache"  # private: the test removes its compiled cache
    routes = tmp_path / "routes.toml"
    routes.write_text(registry_routes(cache, {"victim": (victim, "victim.test"), "neighbour": (neighbour, "n.test")}))
    server: RouterServer = router_server(routes)
    server.wait_ready(60)
    assert server.get("/", host="victim.test").text == "intact reply   \n"
    server.stop()

    blob = cache / "blobs" / "sha256" / hashlib.sha256(wasm).hexdigest()
    _damage_in_place(blob, b"intact reply", b"DAMAGED!!!!!")  # still a valid module
    shutil.rmtree(cache / "compiled")

    server = router_server(routes)
    server.wait_ready(60)
    assert server.get("/", host="victim.test").text == "intact reply   \n", server.log()
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == hashlib.sha256(wasm).hexdigest()
    assert "no longer matches its digest" in server.log()
    assert server.get("/", host="n.test").text == "neighbour      \n"
