"""End to end: `lepton-router serve` subprocess, 3 apps pulled from a real registry, real HTTP."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.support.server import RouterServer, echo_wasm, hello_wasm, push_app_to

pytestmark = pytest.mark.usefixtures("registry")


@pytest.fixture(scope="module")
def served(registry, tmp_path_factory: pytest.TempPathFactory, router_cache_dir: Path):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("e2e")
    alpha = push_app_to(registry.host, "e2e/alpha:v1", hello_wasm("alpha"), work)
    beta = push_app_to(registry.host, "e2e/beta:v1", hello_wasm("beta"), work)
    echo = push_app_to(registry.host, "e2e/echo:v1", echo_wasm(), work)
    routes = work / "routes.toml"
    routes.write_text(f"""
[server]
cache_dir = "{router_cache_dir}"

[apps.alpha]
source = "{alpha}"
insecure = true
hosts = ["alpha.test"]

[apps.beta]
source = "{beta}"
insecure = true
prefix = "/beta"
max_body = "64KiB"

[apps.echo]
source = "{echo}"
insecure = true
hosts = ["echo.test", "*.echo.test"]
prefix = "/e"
""")
    server = RouterServer(routes).start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("host", ["alpha.test", "ALPHA.Test", "alpha.test:8080", "alpha.test.", "Alpha.Test.:80"])
def test_route_by_host(served: RouterServer, host: str) -> None:
    response = served.get("/", host=host)
    assert response.status_code == 200, served.log()
    assert response.text == "alpha          \n"
    assert served.get("/any/path?q=1", host=host).text == "alpha          \n"


@pytest.mark.parametrize("path", ["/beta", "/beta/", "/beta/x/y?z=1"])
def test_route_by_prefix_on_any_host(served: RouterServer, path: str) -> None:
    for host in ("whatever.test", "127.0.0.1", "echo.test"):
        response = served.get(path, host=host)
        assert (response.status_code, response.text) == (200, "beta           \n"), (host, path)
    # An exact host beats an any-host prefix: alpha (root of alpha.test) keeps its paths.
    assert served.get(path, host="alpha.test").text == "alpha          \n"


@pytest.mark.parametrize(
    ("host", "path"),
    [("nobody.test", "/"), ("nobody.test", "/betax"), ("echo.test", "/"), ("echo.test", "/ex"),
     ("alpha.test.evil", "/")],
)
def test_unknown_is_404_naming_nothing(served: RouterServer, host: str, path: str) -> None:
    response = served.get(path, host=host)
    assert response.status_code == 404
    assert response.text == "not found\n"


def test_route_by_host_and_prefix_strips_prefix(served: RouterServer) -> None:
    response = served.get("/e/a/b%20c?x=1&y", host="echo.test:3000")
    assert response.status_code == 200, served.log()
    h = response.headers
    assert h["x-echo-path"] == "/a/b%20c?x=1&y"
    assert h["x-echo-authority"] == "echo.test:3000"
    assert h["x-req-spin-base-path"] == "/e"
    assert h["x-req-spin-full-url"] == "http://echo.test:3000/e/a/b%20c?x=1&y"
    assert h["x-req-spin-path-info"] == "/a/b%20c"
    assert h["x-req-spin-client-addr"].startswith("127.0.0.1:")
    # The bare prefix is the app's root.
    assert served.get("/e", host="echo.test").headers["x-echo-path"] == "/"
    # Wildcard host.
    assert served.get("/e/z", host="deep.sub.echo.test").headers["x-echo-path"] == "/z"


def _raw_request(server: RouterServer, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def test_missing_host_header(served: RouterServer) -> None:
    # HTTP/1.0 allows no Host: only any-host apps can match.
    answer = _raw_request(served, b"GET /beta/x HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 200") or answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert answer.endswith(b"beta           \n")
    answer = _raw_request(served, b"GET / HTTP/1.0\r\n\r\n")
    assert b" 404 " in answer.split(b"\r\n", 1)[0]


def test_malformed_host_is_not_matched(served: RouterServer) -> None:
    for host in ("alpha.test:notaport", "alpha.test/evil", "[::1"):
        response = served.get("/", host=host)
        assert response.status_code in (400, 404), host


def test_streams_a_large_body_both_ways(served: RouterServer) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB

    def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    response = httpx.post(f"{served.base_url}/e/upload", headers={"host": "echo.test"}, content=chunks(),
                          timeout=60)
    assert response.status_code == 200, served.log()
    assert response.content == body


def test_big_download(served: RouterServer) -> None:
    with httpx.stream("GET", f"{served.base_url}/e/big/4096", headers={"host": "echo.test"}, timeout=60) as r:
        total = sum(len(chunk) for chunk in r.iter_bytes())
    assert r.status_code == 200
    assert total == 4096 * 1024


def test_health_ready_and_admin(served: RouterServer) -> None:
    assert served.get("/.well-known/lepton/health", host="alpha.test").text == "ok\n"
    ready = served.get("/.well-known/lepton/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    status = served.status()
    apps = {a["name"]: a for a in status["apps"]}
    assert set(apps) == {"alpha", "beta", "echo"}
    for app in apps.values():
        assert app["state"] == "ready" and app["error"] is None
        assert app["version"]["digest"].startswith("sha256:")
    assert apps["alpha"]["requests"] > 0
    page = httpx.get(served.admin_url + "/plain").text  # (/ is the live page: tests/e2e/test_status_page.py)
    assert "<table>" in page and "alpha.test" in page and apps["echo"]["version"]["digest"] in page
    assert '<script src="page.js"' in httpx.get(served.admin_url + "/").text
    metrics = httpx.get(served.admin_url + "/metrics").text
    assert 'lepton_requests_total{app="alpha",code="2xx"}' in metrics
    assert 'lepton_app_state{app="beta",state="ready"} 1' in metrics
    assert "lepton_unmatched_requests_total" in metrics


def test_h2c_prior_knowledge(served: RouterServer) -> None:
    with httpx.Client(http1=False, http2=True) as client:
        response = client.get(f"{served.base_url}/e/h2?x", headers={"host": "echo.test"})
    assert response.http_version == "HTTP/2"
    assert response.status_code == 200
    assert response.headers["x-echo-path"] == "/h2?x"
    assert response.headers["x-echo-authority"] == "echo.test"


def test_unread_request_body_does_not_wedge_the_connection(served: RouterServer) -> None:
    """alpha never reads its request body; the next request on the same client must still work."""
    body = b"z" * (2 * 1024 * 1024)
    for http2 in (False, True):
        with httpx.Client(http1=not http2, http2=http2, timeout=20, headers={"host": "alpha.test"}) as client:
            for _ in range(3):
                response = client.post(f"{served.base_url}/upload", content=body)
                assert response.status_code == 200 and response.text == "alpha          \n"
            assert client.get(f"{served.base_url}/").status_code == 200


def test_body_over_max_body_is_413_and_the_client_recovers(served: RouterServer) -> None:
    with httpx.Client(timeout=20, headers={"host": "x.test"}) as client:
        response = client.post(f"{served.base_url}/beta/up", content=b"b" * (512 * 1024))
        assert response.status_code == 413
        assert client.post(f"{served.base_url}/beta/up", content=b"small").status_code == 200
        assert client.get(f"{served.base_url}/beta").text == "beta           \n"


def test_spin_well_known_endpoints_answer_for_the_app_each_request_routes_to(served: RouterServer) -> None:
    """Spin's /.well-known/spin/health and /info, per hostname and under a mount prefix, as
    probes and tools written for Spin expect them."""
    for host, prefix, app in (("alpha.test", "", "alpha"), ("whatever.test", "/beta", "beta")):
        health = served.get(f"{prefix}/.well-known/spin/health", host=host)
        assert (health.status_code, health.text) == (200, "OK")
        info = served.get(f"{prefix}/.well-known/spin/info", host=host)
        assert info.status_code == 200 and info.headers["content-type"] == "application/json"
        status = served.app_status(app)
        assert status is not None
        assert info.json()["oci_image_digest"] == status["version"]["digest"]
        assert info.json()["name"] == f"e2e-{app}-v1"
    assert served.get("/.well-known/spin/nope", host="alpha.test").status_code == 404
