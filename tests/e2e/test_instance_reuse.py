"""Instance reuse through `lepton-router serve`: routes.toml's max_instance_reuse_count and
idle_instance_timeout, per app and in [defaults]. The WAT guest's /count answers how many /count
requests its instance has served."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.server import RouterServer, echo_wasm, push_app_to, registry_routes, write_routes


def _routes(cache: Path, guest: str, a_idle: str = "30s") -> str:
    return f'''
[server]
cache_dir = "{cache}"

[defaults]
max_instance_reuse_count = 50
idle_instance_timeout = "30s"

[apps.a]
source = "{guest}"
insecure = true
hosts = ["a.test"]
idle_instance_timeout = "{a_idle}"

[apps.b]
source = "{guest}"
insecure = true
hosts = ["b.test"]

[apps.fresh]
source = "{guest}"
insecure = true
hosts = ["fresh.test"]
max_instance_reuse_count = 1

[apps.brief]
source = "{guest}"
insecure = true
hosts = ["brief.test"]
idle_instance_timeout = "300ms"
'''


def _count(server: RouterServer, host: str) -> int:
    response = server.get("/count", host=host)
    assert response.status_code == 200
    return int(response.headers["x-count"])


def test_reuse_keeps_state_per_app_and_version(registry, router_server, router_cache_dir: Path,  # type: ignore[no-untyped-def]
                                               tmp_path: Path) -> None:
    guest = push_app_to(registry.host, "reuse/guest:v1", echo_wasm(), tmp_path)
    routes = tmp_path / "routes.toml"
    routes.write_text(_routes(router_cache_dir, guest))
    server: RouterServer = router_server(routes)
    server.wait_ready()

    counts = [_count(server, "a.test") for _ in range(10)]
    assert max(counts) > 1, counts  # one instance answered several requests: its state was kept
    assert _count(server, "b.test") == 1  # the same component in another app: never shared
    assert [_count(server, "fresh.test") for _ in range(5)] == [1] * 5  # reuse off for this app

    # A new version of `a` (here: a changed setting) starts with fresh instances.
    version = server.app_status("a")["version"]  # type: ignore[index]
    write_routes(routes, _routes(router_cache_dir, guest, a_idle="29s"))
    server.wait_for(lambda: (server.app_status("a") or {}).get("version") != version, 60, "a swapped")
    assert _count(server, "a.test") == 1

    # An instance idle past the timeout is dropped.
    _count(server, "brief.test")
    time.sleep(1.0)
    assert _count(server, "brief.test") == 1
    assert server.get("/", host="b.test").status_code == 200


def test_js_sdk_app_runs_fresh_with_reuse_configured(registry, router_server, router_cache_dir: Path,  # type: ignore[no-untyped-def]
                                                     tmp_path: Path) -> None:
    """A JS SDK app answering through addEventListener("fetch") (StarlingMonkey's FetchEvent)
    fails every request after its first on one instance, so reuse set in [defaults] must not
    reach it: it runs fresh, every request answers, and the log says why. A JS app that exports
    its wasi:http handler itself is reused like any other, and so is the WAT neighbour."""
    from tests.support.fixtures import build_js_echo, build_js_wasi_echo

    js = push_app_to(registry.host, "reuse/js:v1", build_js_echo().read_bytes(), tmp_path)
    jsw = push_app_to(registry.host, "reuse/jsw:v1", build_js_wasi_echo().read_bytes(), tmp_path)
    wat = push_app_to(registry.host, "reuse/wat:v1", echo_wasm(), tmp_path)
    routes = tmp_path / "routes.toml"
    routes.write_text(registry_routes(router_cache_dir, {"js": (js, "js.test"), "jsw": (jsw, "jsw.test"),
                                                         "wat": (wat, "wat.test")},
                                      defaults="max_instance_reuse_count = 50\n"))
    server: RouterServer = router_server(routes)
    server.wait_ready(120)
    for _ in range(4):
        response = server.get("/", host="js.test")
        assert response.status_code == 200, (response.status_code, server.log()[-2000:])
        assert response.json()["method"] == "GET"
    log = server.log()
    ignored = [line for line in log.splitlines() if "max_instance_reuse_count ignored" in line]
    assert len(ignored) == 1, ignored  # the FetchEvent app's, not the one exporting its handler
    assert "a fresh instance per request, because it was built by ComponentizeJS with a FetchEvent handler" in ignored[0]
    served = []
    for n in range(4):
        response = server.get(f"/x?n={n}", host="jsw.test")
        assert response.status_code == 200, (response.status_code, server.log()[-2000:])
        assert response.json()["uri"] == f"/x?n={n}"
        served.append(response.json()["served"])
    assert max(served) > 1, served  # one instance answered several requests
    assert [_count(server, "wat.test") for _ in range(3)] == [1, 2, 3]
