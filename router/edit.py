"""Edit routes.toml for `lepton-router add/remove`: tomllib in, tomli-w out, other apps untouched.

tomli-w cannot keep comments, so an edited file loses them (documented in docs/reference/cli.md). The edited
document is validated as a whole before it is written, and written atomically (temp file + rename)
so a running server's watcher never reads a half-written file.

With `[server] apps_dir` set, `add` writes one file per app there instead (NAME.toml, validated as
the server would, conflicts with the other apps included), and `remove` deletes it.
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from router.apps_dir import APP_SUFFIXES, parse_app_file
from router.apps_merge import merge
from router.config import ConfigError, Problem, RoutesConfig, parse, rebase_source
from router.config_file import scan_apps_dir


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
    atomic_write(path, text)
    return validated


def atomic_write(path: Path, text: str) -> None:
    """Replace `path` whole: a temp file in the same directory, named as the watcher ignores
    (".NAME.*.tmp"), flushed to disk, then renamed over the file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _entry(source: str, hosts: list[str], prefix: str | None, insecure: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"source": source}
    if hosts:
        entry["hosts"] = hosts
    if prefix:
        entry["prefix"] = prefix
    if insecure:
        entry["insecure"] = True
    return entry


def add_app(path: Path, name: str, source: str, *, hosts: list[str], prefix: str | None,
            insecure: bool = False, replace: bool = False) -> RoutesConfig:
    doc = read_doc(path)
    apps = doc.setdefault("apps", {})
    if not isinstance(apps, dict):
        raise EditError(f"{path}: `apps` is not a table")
    if name in apps and not replace:
        raise EditError(f"{path}: app {name!r} already exists (remove it first, or use --replace)")
    apps[name] = _entry(source, hosts, prefix, insecure)
    return write_doc(path, doc)


def app_files(directory: Path, name: str) -> list[Path]:
    """The files of the apps directory that define app `name`."""
    return [directory / f"{name}{suffix}" for suffix in APP_SUFFIXES if (directory / f"{name}{suffix}").exists()]


def add_app_file(routes: RoutesConfig, name: str, source: str, *, hosts: list[str], prefix: str | None,
                 insecure: bool = False, replace: bool = False) -> Path:
    """Write app `name` as a file of the apps directory (NAME.toml, or the NAME.json it replaces)."""
    directory = routes.server.apps_dir
    assert directory is not None
    if name in routes.apps:
        raise EditError(f"{routes.path}: app {name!r} is defined there; the apps directory cannot define it too")
    existing = app_files(directory, name)
    if existing and not replace:
        raise EditError(f"{existing[0]}: app {name!r} already exists (remove it first, or use --replace)")
    target = existing[0] if existing else directory / f"{name}.toml"
    # A relative oci-layout path means the same as in routes.toml (from its directory), but a
    # file of the apps directory reads it from its own directory: write it as seen from there.
    source = rebase_source(source, routes.path.parent, directory)
    entry = _entry(source, hosts, prefix, insecure)
    text = json.dumps(entry, indent=2) + "\n" if target.suffix == ".json" else tomli_w.dumps(entry)
    result = parse_app_file(target, text, routes.defaults)
    if result.problems:
        raise ConfigError(list(result.problems))
    directory.mkdir(parents=True, exist_ok=True)
    # Refused by the server (a route another app holds, say)? Then refused here, before writing.
    others = [r for r in scan_apps_dir(directory, routes.defaults) if r.name != name]
    now = merge(routes.apps, str(routes.path), others, {})
    after = merge(routes.apps, str(routes.path), [*others, result], now.apps)
    refused = [p for p in after.problems if p.file == str(target)]
    if refused:
        raise ConfigError(refused)
    atomic_write(target, text)
    return target


def remove_app_file(routes: RoutesConfig, name: str) -> Path:
    """Delete app `name`'s file from the apps directory (or, if routes.toml defines it, edit that)."""
    directory = routes.server.apps_dir
    assert directory is not None
    files = app_files(directory, name)
    if not files:
        if name in routes.apps:
            remove_app(routes.path, name)
            return routes.path
        raise EditError(f"{directory}: no app named {name!r} (and none in {routes.path})")
    for file in files:
        file.unlink()
    return files[0]


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
