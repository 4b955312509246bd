"""Serving modes: the bundled offline demo (top-level routes.toml), --workers N, TLS."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.server import REPO, RouterServer, hello_wasm, push_app_to, write_routes
from tests.support.tools import require_tool

DEMO_BODY = "Hi from lepton!\n"


def test_bundled_demo_offline(router_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`lepton-router serve routes.toml` from the repo serves examples/hello with no registry."""
    layout = REPO / "examples" / "hello"
    assert sum(p.stat().st_size for p in layout.rglob("*") if p.is_file()) < 1024 * 1024
    server: RouterServer = router_server(REPO / "routes.toml", env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    server.wait_ready()
    assert server.get("/", host="hello.localhost").text == DEMO_BODY
    assert server.get("/anything", host="HELLO.localhost:3000").text == DEMO_BODY
    assert server.get("/hello").text == DEMO_BODY
    assert server.get("/hello/world", host="example.test").text == DEMO_BODY
    assert server.get("/", host="other.localhost").status_code == 404
    apps = server.status()["apps"]
    assert [(a["name"], a["state"]) for a in apps] == [("hello", "ready")]
    assert (tmp_path / "cache").is_dir()  # caches went where XDG said, not into ~/.cache


def _pids_ready(server: RouterServer, want: int) -> bool:
    pids = set()
    for _ in range(40):
        with httpx.Client(timeout=5) as fresh:  # a new connection each time: any worker may answer
            status = fresh.get(f"{server.admin_url}/status.json").json()
        if status["ready"]:
            pids.add(status["pid"])
        if len(pids) >= want:
            return True
    return False


def test_two_workers_share_the_port_and_both_hot_reload(router_server, registry, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                        router_cache_dir: Path) -> None:
    v1 = push_app_to(registry.host, "workers/app:v1", hello_wasm("workers v1"), tmp_path)
    v2 = push_app_to(registry.host, "workers/app:v2", hello_wasm("workers v2"), tmp_path)
    routes = tmp_path / "routes.toml"
    template = f'[server]\ncache_dir = "{router_cache_dir}"\n[apps.app]\nsource = "{{}}"\ninsecure = true\n'
    routes.write_text(template.format(v1))
    server: RouterServer = router_server(routes, workers=2)
    server.wait_for(lambda: _pids_ready(server, 2), 120, "two ready workers")

    def all_answer(text: str, n: int = 30) -> bool:
        for _ in range(n):
            with httpx.Client(timeout=10) as fresh:
                response = fresh.get(f"{server.base_url}/")
            if response.status_code != 200:
                raise AssertionError(f"{response.status_code}: {response.text}")
            if response.text != text:
                return False
        return True

    assert all_answer("workers v1     \n")
    write_routes(routes, template.format(v2))
    server.wait_for(lambda: all_answer("workers v2     \n"), 60, "both workers on v2")
    assert server.stop() == 0


def test_tls(router_server, registry, tmp_path: Path, router_cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    openssl = require_tool("openssl")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    app = push_app_to(registry.host, "tls/app:v1", hello_wasm("secure"), tmp_path)
    routes = tmp_path / "routes.toml"
    routes.write_text(f'[server]\ncache_dir = "{router_cache_dir}"\ncertfile = "cert.pem"\nkeyfile = "key.pem"\n'
                      f'[apps.app]\nsource = "{app}"\ninsecure = true\n')
    server: RouterServer = router_server(routes, tls=True)
    server.wait_ready()
    with httpx.Client(verify=ssl.create_default_context(cafile=str(tmp_path / "cert.pem")), http2=True) as client:
        response = client.get(f"https://localhost:{server.port}/")
    assert response.status_code == 200 and response.text == "secure         \n"
    assert response.http_version == "HTTP/2"  # ALPN h2 over TLS
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{server.port}/", timeout=5)  # no plain HTTP on a TLS listener
