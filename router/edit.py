"""Edit routes.toml for `lepton-router add/remove`: tomllib in, tomli-w out, other apps untouched.

tomli-w cannot keep comments, so an edited file loses them (documented in docs/reference/cli.md). The edited
document is validated as a whole before it is written, and written atomically (temp file + rename)
so a running server's watcher never reads a half-written file.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from router.config import ConfigError, Problem, RoutesConfig, parse


class EditError(Exception):
    pass


def read_doc(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem(str(path), None, None, None, f"not valid TOML: {exc}")]) from exc


def write_doc(path: Path, doc: dict[str, Any]) -> RoutesConfig:
    text = tomli_w.dumps(doc)
    validated = parse(text, path)  # raises ConfigError; nothing is written then
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return validated


def add_app(path: Path, name: str, source: str, *, hosts: list[str], prefix: str | None,
            insecure: bool = False, replace: bool = False) -> RoutesConfig:
    doc = read_doc(path)
    apps = doc.setdefault("apps", {})
    if not isinstance(apps, dict):
        raise EditError(f"{path}: `apps` is not a table")
    if name in apps and not replace:
        raise EditError(f"{path}: app {name!r} already exists (remove it first, or use --replace)")
    entry: dict[str, Any] = {"source": source}
    if hosts:
        entry["hosts"] = hosts
    if prefix:
        entry["prefix"] = prefix
    if insecure:
        entry["insecure"] = True
    apps[name] = entry
    return write_doc(path, doc)


def remove_app(path: Path, name: str) -> RoutesConfig:
    doc = read_doc(path)
    apps = doc.get("apps")
    if not isinstance(apps, dict) or name not in apps:
        raise EditError(f"{path}: no app named {name!r}")
    del apps[name]
    if not apps and "server" not in doc:
        # Without apps and without [server] the file reads as empty or half-written, which the
        # server refuses (router/config.py). Removing the last app is meant: say so with [server].
        doc["server"] = {}
    return write_doc(path, doc)
