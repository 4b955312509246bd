"""Abandoned uploads must not exhaust the instance pool (every app answered 500 `maximum
concurrent limit ... for component instances reached` after ~200 of them): an instance is released
when its request ends, however it ends, at once and not when the cyclic GC gets to it."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx

from tests.support import fixtures
from tests.support.server import RouterServer, hello_wasm, push_app_to

ROUNDS = 5
PER_ROUND = 40  # concurrent abandoned uploads per round (200 in all: more than the pool's 160)
HOLD_S = 0.5


def _abandon(port: int, errors: list[str]) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST / HTTP/1.1\r\nhost: py.test\r\ncontent-length: 100000\r\n\r\nabc")
            time.sleep(HOLD_S)
    except OSError as exc:
        errors.append(repr(exc))


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def test_abandoned_uploads_release_their_instances(registry, router_server, router_cache_dir: Path,  # type: ignore[no-untyped-def]
                                                   tmp_path: Path) -> None:
    py = push_app_to(registry.host, "abandon/py:v1", fixtures.build_python_echo().read_bytes(), tmp_path)
    hello = push_app_to(registry.host, "abandon/hello:v1", hello_wasm("neighbour"), tmp_path)
    routes = tmp_path / "routes.toml"
    routes.write_text(
        f'[server]\ncache_dir = "{router_cache_dir}"\n'
        f'[apps.py]\nsource = "{py}"\ninsecure = true\nhosts = ["py.test"]\n'
        f'[apps.hello]\nsource = "{hello}"\ninsecure = true\nhosts = ["hello.test"]\n'
    )
    server: RouterServer = router_server(routes)
    server.wait_ready()
    assert server.proc is not None
    assert server.get("/", host="py.test").status_code == 200
    threads_before = _threads(server.proc.pid)

    errors: list[str] = []
    for _ in range(ROUNDS):
        clients = [threading.Thread(target=_abandon, args=(server.port, errors)) for _ in range(PER_ROUND)]
        for c in clients:
            c.start()
        # While 40 uploads hang on one app (more than its share of worker threads, and so of
        # instances), the neighbour still answers at once.
        time.sleep(HOLD_S / 2)
        assert server.get("/", host="hello.test", timeout=5).text.startswith("neighbour")
        for c in clients:
            c.join(30)
    assert not errors

    # Every app still serves, the abusive one included: nothing was left holding an instance.
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for _ in range(20):
            assert client.post("/", headers={"host": "py.test"}, content=b"ok").status_code == 200
            assert client.get("/", headers={"host": "hello.test"}).text.startswith("neighbour")
    assert "maximum concurrent limit" not in server.log()
    # Worker threads come back to the pool's idle set: no thread per abandoned upload.
    server.wait_for(lambda: _threads(server.proc.pid) <= threads_before + 32, 20, "threads back")
