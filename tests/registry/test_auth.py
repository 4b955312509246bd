"""Credentials from Spin's registry-auth.json and Docker's config.json, against an htpasswd registry.

HOME, XDG_CONFIG_HOME and DOCKER_CONFIG point at temp dirs so the real ~/.config and ~/.docker
are never read.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from registry import AuthError, load_app, push_app
from registry.auth import find_credentials
from tests.support.registry_apps import AppComponent, sized_module, write_local_app
from tests.support.registry_server import RegistryServer


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("DOCKER_CONFIG", str(home / "docker"))
    return home


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def spin_login(home: Path, host: str, user: str, password: str) -> None:
    path = home / ".config" / "fermyon" / "registry-auth.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auths": {host: b64(f"{user}:{password}")}}, indent=2))


def docker_login(home: Path, host: str, user: str, password: str) -> None:
    path = home / "docker" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auths": {host: {"auth": b64(f"{user}:{password}")}}}))


@pytest.fixture
def lockfile(tmp_path: Path) -> Path:
    return write_local_app(tmp_path / "app", [AppComponent("web", sized_module(500, "auth"), files={"f.txt": b"F" * 300})])


def test_spin_registry_auth_json(auth_registry: RegistryServer, home: Path, lockfile: Path, tmp_path: Path) -> None:
    assert auth_registry.username and auth_registry.password
    spin_login(home, auth_registry.host, auth_registry.username, auth_registry.password)
    ref = f"{auth_registry.host}/auth/spin:v1"
    digest = push_app(lockfile, ref, insecure=True)
    assert load_app(ref, cache_dir=tmp_path / "cache", insecure=True).manifest_digest == digest


def test_docker_config_json(auth_registry: RegistryServer, home: Path, lockfile: Path, tmp_path: Path) -> None:
    assert auth_registry.username and auth_registry.password
    docker_login(home, f"http://{auth_registry.host}/v1/", auth_registry.username, auth_registry.password)
    ref = f"{auth_registry.host}/auth/docker:v1"
    digest = push_app(lockfile, ref, insecure=True)
    assert load_app(ref, cache_dir=tmp_path / "cache", insecure=True).manifest_digest == digest


def test_spin_file_wins_over_docker_config(auth_registry: RegistryServer, home: Path) -> None:
    spin_login(home, auth_registry.host, "from-spin", "a")
    docker_login(home, auth_registry.host, "from-docker", "b")
    creds = find_credentials(auth_registry.host)
    assert creds is not None and creds.username == "from-spin"
    assert "registry-auth.json" in creds.origin


def test_wrong_password_is_a_clear_error(auth_registry: RegistryServer, home: Path, lockfile: Path, tmp_path: Path) -> None:
    assert auth_registry.username
    spin_login(home, auth_registry.host, auth_registry.username, "wrong-password")
    ref = f"{auth_registry.host}/auth/wrong:v1"
    with pytest.raises(AuthError, match=r"rejected the credentials for user 'lepton' from .*registry-auth\.json"):
        load_app(ref, cache_dir=tmp_path / "cache", insecure=True)
    with pytest.raises(AuthError, match="rejected the credentials"):
        push_app(lockfile, ref, insecure=True)


def test_no_credentials_is_a_clear_error(auth_registry: RegistryServer, home: Path, tmp_path: Path) -> None:
    with pytest.raises(AuthError, match=r"requires authentication and no credentials were found"):
        load_app(f"{auth_registry.host}/auth/none:v1", cache_dir=tmp_path / "cache", insecure=True)


def test_docker_hub_keys_are_normalised(home: Path) -> None:
    docker_login(home, "https://index.docker.io/v1/", "hubuser", "hubpass")
    creds = find_credentials("index.docker.io")
    assert creds is not None and (creds.username, creds.password) == ("hubuser", "hubpass")


def test_docker_credential_helper(
    auth_registry: RegistryServer, home: Path, lockfile: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`credHelpers` runs `docker-credential-<name> get` with the server on stdin."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-lepton-test"
    helper.write_text(
        "#!/bin/sh\n"
        'read server\n'
        f'if [ "$server" = "{auth_registry.host}" ]; then\n'
        f'  printf \'{{"ServerURL":"%s","Username":"{auth_registry.username}","Secret":"{auth_registry.password}"}}\' "$server"\n'
        "else exit 1; fi\n"
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    config = home / "docker" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"credHelpers": {auth_registry.host: "lepton-test"}}))
    ref = f"{auth_registry.host}/auth/helper:v1"
    digest = push_app(lockfile, ref, insecure=True)
    assert load_app(ref, cache_dir=tmp_path / "cache", insecure=True).manifest_digest == digest


def test_bearer_token_flow(token_registry: RegistryServer, home: Path, lockfile: Path, tmp_path: Path) -> None:
    """The flow ghcr.io / Docker Hub use: 401 Bearer challenge -> token service -> retry."""
    assert token_registry.username and token_registry.password
    spin_login(home, token_registry.host, token_registry.username, token_registry.password)
    before = token_registry.token_service.issued
    ref = f"{token_registry.host}/auth/bearer:v1"
    digest = push_app(lockfile, ref, insecure=True)
    assert load_app(ref, cache_dir=tmp_path / "cache", insecure=True).manifest_digest == digest
    assert token_registry.token_service.issued > before

    spin_login(home, token_registry.host, token_registry.username, "wrong")
    with pytest.raises(AuthError, match="rejected the credentials"):
        load_app(ref, cache_dir=tmp_path / "cache2", insecure=True)
