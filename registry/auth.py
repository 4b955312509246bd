"""Registry credentials, looked up in Spin's order (crates/oci/src/client.rs `Client::auth`).

1. `$XDG_CONFIG_HOME/fermyon/registry-auth.json` (or ~/.config/...), written by `spin registry
   login`: `{"auths": {"<host>": "<base64 user:pass>"}}`.
2. Docker's `config.json` (`$DOCKER_CONFIG/config.json` or ~/.docker/config.json): `credHelpers`,
   then `credsStore`, then `auths[host].auth` (or username/password). Identity tokens are not
   supported (Spin falls back to anonymous too).
3. Anonymous.

Any unreadable file is skipped with a debug log, as Spin treats any lookup error as "anonymous".
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("lepton.registry")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    origin: str  # where they came from, for error messages (never the secret itself)

    def basic_token(self) -> str:
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def spin_auth_path() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else _home() / ".config"
    return base / "fermyon" / "registry-auth.json"


def docker_config_path() -> Path:
    override = os.environ.get("DOCKER_CONFIG")
    return (Path(override) if override else _home() / ".docker") / "config.json"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.debug("ignoring unreadable credentials file %s: %s", path, exc)
        return None
    return obj if isinstance(obj, dict) else None


def _split_basic(encoded: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _normalise_key(key: str) -> str:
    """Docker writes keys like `https://index.docker.io/v1/`; compare bare hosts."""
    if "://" in key:
        key = key.split("://", 1)[1]
    return key.split("/", 1)[0]


def _host_candidates(server: str) -> list[str]:
    # Docker Hub logins show up under several names.
    if server in ("index.docker.io", "docker.io", "registry-1.docker.io"):
        return ["index.docker.io", "docker.io", "registry-1.docker.io"]
    return [server]


def _from_spin(server: str) -> Credentials | None:
    path = spin_auth_path()
    cfg = _read_json(path)
    auths = cfg.get("auths") if cfg else None
    if not isinstance(auths, dict):
        return None
    for host in _host_candidates(server):
        value = auths.get(host)
        if isinstance(value, str) and (pair := _split_basic(value)):
            return Credentials(pair[0], pair[1], f"{path} ({host})")
    return None


def _run_helper(helper: str, server: str) -> tuple[str, str] | None:
    binary = shutil.which(f"docker-credential-{helper}")
    if binary is None:
        log.debug("credential helper docker-credential-%s not found", helper)
        return None
    try:
        proc = subprocess.run(
            [binary, "get"], input=server.encode(), capture_output=True, check=True, timeout=30
        )
        payload = json.loads(proc.stdout)
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        log.debug("credential helper %s failed for %s: %s", helper, server, exc)
        return None
    user, secret = payload.get("Username"), payload.get("Secret")
    if not isinstance(user, str) or not isinstance(secret, str) or user == "<token>":
        return None  # "<token>" marks an identity token, which Spin does not use either
    return user, secret


def _from_docker(server: str) -> Credentials | None:
    path = docker_config_path()
    cfg = _read_json(path)
    if not cfg:
        return None
    candidates = _host_candidates(server)
    helpers = cfg.get("credHelpers") if isinstance(cfg.get("credHelpers"), dict) else {}
    for host in candidates:
        helper = helpers.get(host) if helpers else None
        if isinstance(helper, str) and (pair := _run_helper(helper, host)):
            return Credentials(pair[0], pair[1], f"docker-credential-{helper}")
    auths = cfg.get("auths") if isinstance(cfg.get("auths"), dict) else {}
    entries = {_normalise_key(k): v for k, v in (auths or {}).items() if isinstance(v, dict)}
    store = cfg.get("credsStore")
    if isinstance(store, str) and store:
        for host in candidates:
            if pair := _run_helper(store, host):
                return Credentials(pair[0], pair[1], f"docker-credential-{store}")
    for host in candidates:
        entry = entries.get(host)
        if not entry:
            continue
        if isinstance(entry.get("auth"), str) and (pair := _split_basic(entry["auth"])):
            return Credentials(pair[0], pair[1], f"{path} ({host})")
        user, password = entry.get("username"), entry.get("password")
        if isinstance(user, str) and isinstance(password, str):
            return Credentials(user, password, f"{path} ({host})")
    return None


def find_credentials(server: str) -> Credentials | None:
    """Credentials for `server` (a registry host[:port]; Docker Hub as index.docker.io), or None."""
    return _from_spin(server) or _from_docker(server)
