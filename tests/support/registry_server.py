"""A real OCI registry for tests: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1.

Fixtures (visible everywhere through tests/conftest.py):

* `registry` (session): anonymous, plain-HTTP registry. Use `registry.host` ("127.0.0.1:PORT") in
  references and pass `insecure=True` to registry functions, e.g.
  `push_app(lock, f"{registry.host}/demo/hello:v1", insecure=True)`.
* `auth_registry` (session): the same with htpasswd (bcrypt) auth; `.username` / `.password`.
* `token_registry` (session): bearer-token auth as public registries do it (a local token service,
  tests/support/registry_token.py, checks `.username` / `.password` and signs JWTs);
  `.token_service.issued` counts tokens handed out.

Tests that need to stop the registry (offline behaviour) should start their own instance with
`RegistryServer(tmp_path).start()` rather than stop the shared one. `.blob_path(digest)` is the
registry's on-disk copy of a blob, for corruption tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import free_port
from tests.support.tools import require_tool

__all__ = ["RegistryServer", "auth_registry", "registry", "running_registry", "token_registry"]

DOCKER_REGISTRY = "/usr/bin/docker-registry"
READY_TIMEOUT_S = 30.0


class RegistryServer:
    def __init__(
        self,
        workdir: Path,
        *,
        username: str | None = None,
        password: str | None = None,
        token_realm: str | None = None,
        token_cert: Path | None = None,
    ) -> None:
        self.workdir = workdir
        self.storage_dir = workdir / "storage"
        self.config_path = workdir / "config.yml"
        self.log_path = workdir / "registry.log"
        self.username = username
        self.password = password
        self.token_realm = token_realm
        self.token_cert = token_cert
        self.token_service: Any = None  # set by the token_registry fixture
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(exist_ok=True)
        self._write_config()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _write_config(self) -> None:
        auth = ""
        if self.token_realm is not None:
            from tests.support.registry_token import ISSUER, SERVICE

            auth = (
                f"auth:\n  token:\n    realm: {self.token_realm}\n    service: {SERVICE}\n"
                f"    issuer: {ISSUER}\n    rootcertbundle: {self.token_cert}\n"
            )
        elif self.username is not None:
            htpasswd = require_tool("htpasswd", "apt install apache2-utils")
            line = subprocess.run(
                [htpasswd, "-Bbn", self.username, self.password or ""],
                check=True,
                capture_output=True,
            ).stdout
            (self.workdir / "htpasswd").write_bytes(line)
            auth = f"auth:\n  htpasswd:\n    realm: lepton-test\n    path: {self.workdir / 'htpasswd'}\n"
        self.config_path.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage_dir}\n"
            "  delete:\n    enabled: true\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n  secret: lepton-test-secret\n" + auth
        )

    def start(self) -> RegistryServer:
        require_tool(DOCKER_REGISTRY, "apt install docker-registry")
        if self._proc is not None and self._proc.poll() is None:
            return self
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [DOCKER_REGISTRY, "serve", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=2):
                    return self
            except urllib.error.HTTPError as exc:
                if exc.code == 401:  # auth-enabled registries answer /v2/ with a challenge
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer on {self.url}/v2/ within {READY_TIMEOUT_S}s")

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    # Raw distribution-API writes (anonymous registries only), for hand-built artifacts in tests;
    # deliberately independent of registry/ so they can check it.

    def put_blob(self, repo: str, data: bytes) -> dict[str, object]:
        """Upload `data`; returns its OCI descriptor fields (without mediaType)."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = urllib.request.Request(f"{self.url}/v2/{repo}/blobs/uploads/", method="POST", data=b"")
        with urllib.request.urlopen(start, timeout=10) as response:
            location = response.headers["Location"]
        if location.startswith("/"):
            location = self.url + location
        sep = "&" if "?" in location else "?"
        put = urllib.request.Request(
            f"{location}{sep}digest={digest}",
            method="PUT",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        with urllib.request.urlopen(put, timeout=10):
            pass
        return {"digest": digest, "size": len(data)}

    def put_manifest(self, repo: str, target: str, body: bytes, media_type: str) -> str:
        put = urllib.request.Request(
            f"{self.url}/v2/{repo}/manifests/{target}",
            method="PUT",
            data=body,
            headers={"Content-Type": media_type},
        )
        with urllib.request.urlopen(put, timeout=10):
            pass
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def blob_path(self, digest: str) -> Path:
        algorithm, hex_ = digest.split(":", 1)
        return self.storage_dir / "docker/registry/v2/blobs" / algorithm / hex_[:2] / hex_ / "data"


@contextlib.contextmanager
def running_registry(workdir: Path, **kwargs: Any) -> Iterator[RegistryServer]:
    server = RegistryServer(workdir, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with running_registry(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with running_registry(
        tmp_path_factory.mktemp("auth-registry"), username="lepton", password="s3cret-pass"
    ) as server:
        yield server


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    from tests.support.registry_token import TokenService

    workdir = tmp_path_factory.mktemp("token-registry")
    tokens = TokenService(workdir, "lepton", "t0ken-pass").start()
    try:
        with running_registry(
            workdir, username="lepton", password="t0ken-pass", token_realm=tokens.realm,
            token_cert=tokens.cert_path,
        ) as server:
            server.token_service = tokens
            yield server
    finally:
        tokens.stop()
