"""Serving modes: the bundled offline demo (top-level routes.toml), --workers N, TLS."""

from __future__ import annotations

import signal
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.server import REPO, RouterServer, free_port, hello_wasm, push_app_to, write_routes
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


def test_two_workers_share_the_port_and_sighup_reloads_both(router_server, registry, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                            router_cache_dir: Path) -> None:
    v1 = push_app_to(registry.host, "workers/app:v1", hello_wasm("workers v1"), tmp_path)
    v2 = push_app_to(registry.host, "workers/app:v2", hello_wasm("workers v2"), tmp_path)
    routes = tmp_path / "routes.toml"
    template = f'[server]\ncache_dir = "{router_cache_dir}"\n[apps.app]\nsource = "{{}}"\ninsecure = true\n'
    routes.write_text(template.format(v1))
    server: RouterServer = router_server(routes, workers=2, extra_args=["--no-watch"])
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
    assert all_answer("workers v1     \n")  # not watching: nothing changes until SIGHUP
    server.signal(signal.SIGHUP)  # to the supervisor, which forwards it to every worker
    server.wait_for(lambda: all_answer("workers v2     \n"), 60, "both workers on v2")
    assert server.stop() == 0



def test_workers_auto_starts_one_worker_per_cpu(router_server, registry, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                router_cache_dir: Path) -> None:
    import os

    cpus = len(os.sched_getaffinity(0))
    source = push_app_to(registry.host, "workers/auto:v1", hello_wasm("workers auto"), tmp_path)
    routes = tmp_path / "routes.toml"
    routes.write_text(f'[server]\ncache_dir = "{router_cache_dir}"\n[apps.app]\nsource = "{source}"\ninsecure = true\n')
    server: RouterServer = router_server(routes, extra_args=["--workers", "auto", "--no-watch"])
    server.wait_for(lambda: _pids_ready(server, cpus), 120, f"{cpus} ready workers")
    if cpus > 1:
        assert f"started {cpus} workers" in server.log()
    assert server.get("/").text == "workers auto   \n"

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


def test_max_concurrent_rejects_with_503_while_a_request_is_in_flight(router_server, registry, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                       router_cache_dir: Path) -> None:
    import threading

    from tests.support.server import echo_wasm

    echo = push_app_to(registry.host, "limits/echo:v1", echo_wasm(), tmp_path)
    routes = tmp_path / "routes.toml"
    routes.write_text(f'[server]\ncache_dir = "{router_cache_dir}"\n'
                      f'[apps.echo]\nsource = "{echo}"\ninsecure = true\nmax_concurrent = 1\n')
    server: RouterServer = router_server(routes)
    server.wait_ready()
    release = threading.Event()
    result: dict[str, httpx.Response] = {}

    def slow_body():  # type: ignore[no-untyped-def]
        yield b"first "
        release.wait(30)  # the request stays in flight until the test lets it finish
        yield b"last"

    def upload() -> None:
        result["slow"] = httpx.post(f"{server.base_url}/up", content=slow_body(), timeout=60)

    thread = threading.Thread(target=upload)
    thread.start()
    try:
        server.wait_for(lambda: server.app_status("echo")["inflight"] == 1, 30, "the slow upload in flight")  # type: ignore[index]
        busy = server.get("/other")
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    finally:
        release.set()
        thread.join(timeout=60)
    assert result["slow"].status_code == 200 and result["slow"].content == b"first last"
    assert server.get("/after").status_code == 200
    assert server.app_status("echo")["rejected"] == 1  # type: ignore[index]


def test_list_shows_live_state(router_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json
    import sys

    routes = tmp_path / "routes.toml"
    admin_port = free_port()
    routes.write_text(f'[server]\nadmin_listen = "127.0.0.1:{admin_port}"\ncache_dir = "{tmp_path / "cache"}"\n'
                      f'[apps.demo]\nsource = "oci-layout:{REPO / "examples" / "hello"}:v1"\nprefix = "/demo"\n')
    server = router_server(routes, admin_port=admin_port)
    server.wait_ready()
    assert server.get("/demo").text == DEMO_BODY
    listed = subprocess.run([sys.executable, "-m", "router.cli", "list", "--json", "-f", str(routes)],
                            capture_output=True, text=True, check=True)
    data = json.loads(listed.stdout)
    assert data["live"] is True
    [demo] = data["apps"]
    assert demo["state"] == "ready" and demo["digest"].startswith("sha256:") and demo["requests"] >= 1
    table = subprocess.run([sys.executable, "-m", "router.cli", "list", "-f", str(routes)],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "SOURCE", "ROUTES", "STATE", "DIGEST", "REQUESTS"]
    assert table[1].split()[3] == "ready"
