"""Run `lepton-router serve` as a real subprocess on free loopback ports, for end-to-end tests.

* `RouterServer(routes_path, ...)`: `.start()` launches `python -m router.cli serve ROUTES --listen
  127.0.0.1:PORT --admin-listen 127.0.0.1:APORT` and waits until /.well-known/lepton/health answers;
  `.wait_ready()` waits for /ready (all apps loaded); `.status()` is the admin JSON; `.stop()`
  sends SIGTERM (then SIGKILL) and `.log()` returns the server's output for assertion messages.
* `router_server` fixture: a factory `router_server(routes_path, **kw) -> RouterServer` whose
  servers are all stopped at teardown.
* App builders: `hello_wasm(text)` (the WAT hello with a 15-character message of our choosing, so
  tests can tell apps and versions apart), `echo_wasm()` (the WAT guest: echoes path, authority and
  request headers as x-echo-*/x-req-* response headers, and the body), and `push_app_to(registry,
  repo_tag, wasm, ...)` which writes a local lock with tests.support.registry_apps and pushes it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import wasmtime

__all__ = ["router_cache_dir", "router_server"]

REPO = Path(__file__).resolve().parents[2]
WAT_DIR = REPO / "tests" / "fixtures" / "wat"
HELLO_TEXT = '"Hello, Fermyon!\\0a"'
START_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 120.0


LOWEST_PORT = 10000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody has bound, for a server started later. It is taken below the kernel's
    ephemeral range: a port from bind(0) is an ephemeral one, and an outgoing connection (a
    registry client's keep-alive, say) can be given it before the server listens on it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    high = _ephemeral_low()
    for _ in range(500):
        port = random.randrange(LOWEST_PORT, high)
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port on {host} between {LOWEST_PORT} and {high}")


def hello_wasm(message: str) -> bytes:
    """The WAT hello component answering `message + "\\n"` (message: exactly 15 ASCII chars or fewer,
    padded with spaces to 15, because the guest writes a fixed 16-byte body)."""
    if len(message) > 15 or not message.isascii() or '"' in message or "\\" in message:
        raise ValueError("message: at most 15 plain ASCII characters")
    text = (WAT_DIR / "hello.wat").read_text()
    assert HELLO_TEXT in text, "tests/fixtures/wat/hello.wat changed: update tests/support/server.py"
    return bytes(wasmtime.wat2wasm(text.replace(HELLO_TEXT, f'"{message:<15}\\0a"')))


def echo_wasm() -> bytes:
    return bytes(wasmtime.wat2wasm((WAT_DIR / "guest.wat").read_text()))


def push_app_to(registry_host: str, repo_tag: str, wasm: bytes, workdir: Path, *,
                files: dict[str, bytes] | None = None, route: str = "/...") -> str:
    """Push a one-component app to `registry_host/repo_tag`; returns the full reference."""
    import registry
    from tests.support.registry_apps import AppComponent, write_local_app

    name = repo_tag.replace("/", "-").replace(":", "-")
    lock = write_local_app(workdir / name, [AppComponent(id="main", wasm=wasm, files=files or {}, route=route)],
                           name=name)
    reference = f"{registry_host}/{repo_tag}"
    registry.push_app(lock, reference, insecure=True)
    return reference


class RouterServer:
    def __init__(self, routes: Path, *, workers: int | None = None, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None, port: int | None = None, admin_port: int | None = None,
                 tls: bool = False) -> None:
        self.routes = routes
        self.port = port or free_port()
        self.admin_port = admin_port or free_port()
        self.workers = workers
        self.extra_args = extra_args or []
        self.env = env or {}
        log_dir = Path(tempfile.gettempdir()) / "lepton-router-tests"
        log_dir.mkdir(exist_ok=True)
        self.log_path = log_dir / f"router-{os.getpid()}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.tls = tls  # the shared port speaks HTTPS (self-signed in tests: not verified here)

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self) -> RouterServer:
        cmd = [sys.executable, "-m", "router.cli", "serve", str(self.routes),
               "--listen", f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin_port}",
               *self.extra_args]
        if self.workers is not None:
            cmd += ["--workers", str(self.workers)]
        env = {**os.environ, **self.env}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lepton-router exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/.well-known/lepton/health", timeout=1.0,
                             verify=not self.tls).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"lepton-router did not start in {START_TIMEOUT_S}s:\n{self.log()}")

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> RouterServer:
        url = f"{self.base_url}/.well-known/lepton/ready"
        self.wait_for(lambda: httpx.get(url, timeout=2.0, verify=not self.tls).status_code == 200, timeout,
                      "all apps ready")
        return self

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"lepton-router exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if predicate():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; server log:\n{self.log()}")

    def status(self) -> dict[str, Any]:
        response = httpx.get(f"{self.admin_url}/status.json", timeout=5.0)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def app_status(self, name: str) -> dict[str, Any] | None:
        for app in self.status()["apps"]:
            if app["name"] == name:
                return dict(app)
        return None

    def get(self, path: str, host: str | None = None, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if host is not None:
            headers["host"] = host
        return httpx.get(f"{self.base_url}{path}", headers=headers, timeout=kw.pop("timeout", 30.0),
                         verify=not self.tls, **kw)

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-20000:]
        except OSError:
            return ""


def push_hellos(registry_host: str, workdir: Path, apps: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Push one WAT hello app per entry, key -> (repo:tag, message); returns key -> reference."""
    return {key: push_app_to(registry_host, tag, hello_wasm(message), workdir) for key, (tag, message) in apps.items()}


def registry_routes(cache: Path, apps: dict[str, tuple[str, str]], server_extra: str = "", defaults: str = "") -> str:
    """routes.toml text for apps pulled from the (plain-HTTP) test registry: name -> (reference, host)."""
    text = f'[server]\ncache_dir = "{cache}"\n{server_extra}'
    if defaults:
        text += f"\n[defaults]\n{defaults}"
    for name, (source, host) in apps.items():
        text += f'\n[apps.{name}]\nsource = "{source}"\ninsecure = true\nhosts = ["{host}"]\n'
    return text


def write_routes(path: Path, text: str) -> None:
    """Replace routes.toml atomically, as an editor or `lepton-router add` would."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
def router_server() -> Iterator[Callable[..., RouterServer]]:
    servers: list[RouterServer] = []

    def make(routes: Path, **kw: Any) -> RouterServer:
        server = RouterServer(routes, **kw)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def router_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One registry/compiled cache for every router test server in the session."""
    return tmp_path_factory.mktemp("router-cache")


def dumps_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
