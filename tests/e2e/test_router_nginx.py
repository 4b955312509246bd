"""Debian nginx in front of lepton-router on loopback: apps see the real client address and host."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.nginx import nginx_for
from tests.support.server import RouterServer, echo_wasm, free_port, push_app_to

CLIENT_IP = "127.0.0.2"  # the test client binds here; only 127.0.0.1 (nginx) is a trusted proxy


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """nginx on a free port, proxying to a second free port; yields (nginx port, upstream port)."""
    upstream_port = free_port()
    with nginx_for(tmp_path / "nginx", [upstream_port]) as proxy:
        yield proxy.port, upstream_port


def test_nginx_forwards_client_address_and_host(nginx, registry, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                 router_cache_dir: Path) -> None:
    nginx_port, upstream_port = nginx
    echo = push_app_to(registry.host, "nginx/echo:v1", echo_wasm(), tmp_path)
    routes = tmp_path / "routes.toml"
    routes.write_text(f"""[server]
cache_dir = "{router_cache_dir}"
trusted_proxies = ["127.0.0.1"]

[apps.echo]
source = "{echo}"
insecure = true
hosts = ["echo.test"]
""")
    server = RouterServer(routes, port=upstream_port)  # where nginx forwards to
    server.start()
    try:
        server.wait_ready()
        transport = httpx.HTTPTransport(local_address=CLIENT_IP)
        with httpx.Client(transport=transport, timeout=30) as client:
            via_nginx = client.get(f"http://127.0.0.1:{nginx_port}/a/b?c=d", headers={"host": "echo.test"})
            assert via_nginx.status_code == 200, server.log()
            h = via_nginx.headers
            assert h["x-req-spin-client-addr"].startswith(f"{CLIENT_IP}:")
            assert h["x-echo-authority"] == "echo.test"
            assert h["x-req-spin-full-url"] == "http://echo.test/a/b?c=d"
            assert h["x-req-x-forwarded-for"] == CLIENT_IP

            # A client talking to lepton-router directly cannot spoof its address: it is not a proxy.
            direct = client.get(f"{server.base_url}/x", headers={"host": "echo.test", "x-forwarded-for": "6.6.6.6",
                                                                 "x-forwarded-host": "evil.test"})
            assert direct.status_code == 200
            assert direct.headers["x-req-spin-client-addr"].startswith(f"{CLIENT_IP}:")
            assert direct.headers["x-echo-authority"] == "echo.test"
    finally:
        server.stop()
