"""The apps directory (`[server] apps_dir`): one app per file, validated file by file. Pure.

`NAME.toml` (or `NAME.json`, the same keys: tools tend to write JSON) holds exactly the keys of an
`[apps.NAME]` table of routes.toml, at the top level. Names that editors, `lepton-router add` and
Kubernetes use for files on their way in (`.*`, `*~`, `*.tmp`, `*.swp`) are never read as apps.

A file is validated on its own: its problems (file, line, field) cost only its own app, so one
bad file never blocks the others. Relative paths in a file (`runtime_config`, `oci-layout:`
sources) are relative to the directory holding the file, as written (a symlinked file, as in a
Kubernetes ConfigMap volume, does not move its base to the link's target).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.config import AppConfig, Locator, Problem, validate_app
from router.tomlpos import locate

APP_SUFFIXES = (".toml", ".json")
IGNORED_SUFFIXES = ("~", ".tmp", ".swp")
ROUTE_FIELDS = ("hosts", "prefix", "routes")  # where a route conflict is pointed at


def is_app_file(name: str) -> bool:
    """Is this directory entry an app file? Hidden files, editor backups and temporary files
    are not (a file being written next to its final name is one of those)."""
    if name.startswith(".") or name.endswith(IGNORED_SUFFIXES):
        return False
    stem, suffix = os.path.splitext(name)
    return bool(stem) and suffix in APP_SUFFIXES


def app_name(file_name: str) -> str:
    return os.path.splitext(file_name)[0]


@dataclass(frozen=True)
class FileResult:
    """One app file, read and validated: `app` is None when it has problems."""

    file: str  # its path, as reported
    name: str  # the app name (the file's stem)
    app: AppConfig | None
    problems: tuple[Problem, ...] = ()
    field_lines: Mapping[str, int | None] | None = None  # lines of hosts/prefix/routes (route conflicts)

    def line_of(self, field: str) -> int | None:
        return (self.field_lines or {}).get(field)


def parse_app_file(path: Path, text: str, defaults: AppConfig) -> FileResult:
    """Validate the text of one app file (`path` names it in problems and gives its directory)."""
    name = app_name(path.name)
    is_json = path.suffix == ".json"
    try:
        doc: Any = json.loads(text) if is_json else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        return FileResult(str(path), name, None, (_syntax_problem(path, name, text, exc, is_json),))
    locator: Locator = (lambda _t, key: _json_line(text, key)) if is_json else (lambda t, key: locate(text, t, key))
    if not isinstance(doc, dict):
        return FileResult(str(path), name, None, (Problem(str(path), 1, name, None, "must be an object of app keys"),))
    if not doc:
        # What a file caught between its creation and its first write looks like.
        message = "empty: `source` is required (an app file is the keys of one [apps.NAME] table)"
        return FileResult(str(path), name, None, (Problem(str(path), None, name, None, message),))
    if "source" not in doc and isinstance(doc.get("apps"), dict):
        # A routes.toml section copied whole: say what the file should hold instead.
        message = "an app file holds the keys of one app at the top level, without an [apps.NAME] header"
        line = _json_line(text, "apps") if is_json else locate(text, ("apps", next(iter(doc["apps"]), "")))
        return FileResult(str(path), name, None, (Problem(str(path), line, name, "apps", message),))
    base = Path(os.path.abspath(path)).parent
    app, problems = validate_app(name, doc, defaults, text=text, path=path, base=base, locator=locator)
    lines = {f: locator((), f) for f in ROUTE_FIELDS if f in doc}
    return FileResult(str(path), name, app, tuple(problems), lines)


def unreadable_file(path: Path, exc: Exception) -> FileResult:
    return FileResult(str(path), app_name(path.name), None,
                      (Problem(str(path), None, app_name(path.name), None, f"cannot read: {exc}"),))


def _syntax_problem(path: Path, name: str, text: str, exc: Exception, is_json: bool) -> Problem:
    if isinstance(exc, json.JSONDecodeError):
        return Problem(str(path), exc.lineno, name, None, f"not valid JSON: {exc}")
    match = re.search(r"at line (\d+)", str(exc))
    # "at end of document": a file cut short (still being written?) ends on its last line.
    line = int(match.group(1)) if match else max(1, len(text.splitlines())) if "end of document" in str(exc) else None
    kind = "JSON" if is_json else "TOML"
    return Problem(str(path), line, name, None, f"not valid {kind}: {exc}")


def _json_line(text: str, key: str | None) -> int | None:
    """The first line holding `"key":` (JSON has no positions in Python's parser)."""
    if key is None:
        return None
    pattern = re.compile(rf'"{re.escape(key)}"\s*:')
    for lineno, line in enumerate(text.splitlines(), start=1):
        if pattern.search(line):
            return lineno
    return None
