"""Safety checks for names that become paths on this host: lock file paths and component ids."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from registry.errors import UnsafePathError

# Spin component ids are kebab-case; anything that could be a path trick is refused outright.
_COMPONENT_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def safe_relative_path(path: str, where: str) -> PurePosixPath:
    """A lock `files` path as a normalised relative path, or UnsafePathError.

    Like Spin's `is_safe_to_join`: only normal components are allowed (`.` components are
    dropped), so no `..`, no absolute path, no empty path. NUL is refused as well.
    """
    if not path or "\x00" in path:
        raise UnsafePathError(f"{where}: file path {path!r} is empty or contains NUL")
    pure = PurePosixPath(path)
    if pure.is_absolute():
        raise UnsafePathError(f"{where}: file path {path!r} is absolute; lock paths must be relative")
    parts = [p for p in pure.parts if p != "."]
    if not parts:
        raise UnsafePathError(f"{where}: file path {path!r} names no file")
    if ".." in parts:
        raise UnsafePathError(f"{where}: file path {path!r} escapes the component's mount (contains '..')")
    return PurePosixPath(*parts)


def safe_component_id(component_id: str, where: str) -> str:
    if component_id in (".", "..") or not _COMPONENT_ID_RE.match(component_id):
        raise UnsafePathError(f"{where}: component id {component_id!r} cannot be used as a directory name")
    return component_id
