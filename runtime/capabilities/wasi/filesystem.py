"""wasi:filesystem/{types,preopens}@0.2.x: the component's `files` mount, read-only, at "/".

Confinement is done on real paths: every path the guest names is resolved (following symlinks)
and must stay inside the mount's real root; absolute paths and `..` escapes get `not-permitted`,
as in wasmtime's cap-std based WASI. Anything that would write gets `read-only`.
"""

from __future__ import annotations

import hashlib
import os
import stat as stat_mod
from pathlib import Path
from typing import Any

from runtime.capabilities.wasi.io import InputStream, StreamFailed, new_input_stream
from runtime.core import context
from runtime.core.contract import BaseCapability, InterfaceImpl, resource_type_id
from runtime.core.values import own, record, rep, tag

DESCRIPTOR = resource_type_id("wasi:filesystem/types", "descriptor")
DIR_STREAM = resource_type_id("wasi:filesystem/types", "directory-entry-stream")


class FsError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def resolve_confined(root: Path, base: Path, path: str) -> Path:
    """The real path `path` names relative to directory `base`, which must stay under `root`.

    `root` and `base` are real (resolved) paths. Raises FsError("not-permitted") for an
    absolute path or any escape (`..` or a symlink leading outside), FsError("no-entry") if a
    component does not exist.
    """
    if path.startswith("/") or "\0" in path:
        raise FsError("not-permitted")
    target = Path(os.path.realpath(base / path))
    if target != root and root not in target.parents:
        raise FsError("not-permitted")
    if not target.exists():
        raise FsError("no-entry")
    return target


class Descriptor:
    def __init__(self, root: Path, path: Path) -> None:
        self.root = root
        self.path = path

    @property
    def is_dir(self) -> bool:
        return self.path.is_dir()


def _type_of(mode: int) -> str:
    if stat_mod.S_ISDIR(mode):
        return "directory"
    if stat_mod.S_ISREG(mode):
        return "regular-file"
    if stat_mod.S_ISLNK(mode):
        return "symbolic-link"
    return "unknown"


def _datetime(ns: int) -> Any:
    return record({"seconds": ns // 1_000_000_000, "nanoseconds": ns % 1_000_000_000})


def _stat(path: Path) -> Any:
    st = path.stat()
    return record(
        {
            "type": _type_of(st.st_mode),
            "link-count": st.st_nlink,
            "size": st.st_size,
            "data-access-timestamp": _datetime(st.st_atime_ns),
            "data-modification-timestamp": _datetime(st.st_mtime_ns),
            "status-change-timestamp": _datetime(st.st_ctime_ns),
        }
    )


def _hash(path: Path) -> Any:
    st = path.stat()
    digest = hashlib.blake2b(f"{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}".encode(), digest_size=16).digest()
    return record({"lower": int.from_bytes(digest[:8], "little"), "upper": int.from_bytes(digest[8:], "little")})


class FileInputStream(InputStream):
    CHUNK = 64 * 1024

    def __init__(self, path: Path, offset: int) -> None:
        self._file = path.open("rb")
        self._file.seek(offset)

    def read(self, n: int, blocking: bool, deadline: float) -> bytes | None:
        try:
            data = self._file.read(min(n, self.CHUNK))
        except OSError as exc:
            raise StreamFailed(str(exc)) from exc
        return data or None

    def close(self) -> None:
        self._file.close()


def _desc(store: Any, handle: Any) -> Descriptor:
    return context.current().table.get(rep(store, handle), Descriptor)


def _guard(fn: Any) -> Any:
    """Run fn; map FsError/OSError to the error-code value the guest expects."""

    def wrapper(store: Any, *args: Any) -> Any:
        try:
            return fn(store, *args)
        except FsError as exc:
            return exc.code
        except IsADirectoryError:
            return "is-directory"
        except NotADirectoryError:
            return "not-directory"
        except FileNotFoundError:
            return "no-entry"
        except PermissionError:
            return "access"
        except OSError:
            return "io"

    return wrapper


def _read_only(store: Any, *args: Any) -> Any:
    # Release borrowed handles (self, maybe another descriptor), then refuse.
    for arg in args:
        if hasattr(arg, "to_host"):
            rep(store, arg)
    return "read-only"


def _get_directories(store: Any) -> list[tuple[Any, str]]:
    ctx = context.current()
    files_dir = ctx.component.files_dir
    if files_dir is None:
        return []
    root = Path(os.path.realpath(files_dir))
    return [(own(ctx.table.push(Descriptor(root, root)), DESCRIPTOR), "/")]


@_guard
def _read_via_stream(store: Any, self: Any, offset: int) -> Any:
    d = _desc(store, self)
    if d.is_dir:
        raise FsError("is-directory")
    return new_input_stream(FileInputStream(d.path, offset))


@_guard
def _get_flags(store: Any, self: Any) -> Any:
    _desc(store, self)
    return {"read"}


def _get_type(store: Any, self: Any) -> Any:
    d = _desc(store, self)
    try:
        return tag("ok", _type_of(d.path.stat().st_mode))  # result<enum, enum> is tagged
    except OSError:
        return tag("err", "io")


@_guard
def _stat_self(store: Any, self: Any) -> Any:
    return _stat(_desc(store, self).path)


@_guard
def _stat_at(store: Any, self: Any, path_flags: Any, path: str) -> Any:
    d = _desc(store, self)
    return _stat(resolve_confined(d.root, d.path, path))


WRITE_OPEN_FLAGS = {"create", "truncate", "exclusive"}
WRITE_DESC_FLAGS = {"write", "mutate-directory", "file-integrity-sync", "data-integrity-sync"}


@_guard
def _open_at(store: Any, self: Any, path_flags: Any, path: str, open_flags: Any, flags: Any) -> Any:
    ctx = context.current()
    d = _desc(store, self)
    if (set(open_flags or ()) & WRITE_OPEN_FLAGS) or (set(flags or ()) & WRITE_DESC_FLAGS):
        # Creating something that exists read-only is refused as read-only either way.
        return "read-only"
    target = resolve_confined(d.root, d.path, path)
    if "directory" in (open_flags or ()) and not target.is_dir():
        raise FsError("not-directory")
    return own(ctx.table.push(Descriptor(d.root, target)), DESCRIPTOR)


@_guard
def _read(store: Any, self: Any, length: int, offset: int) -> Any:
    d = _desc(store, self)
    if d.is_dir:
        raise FsError("is-directory")
    with d.path.open("rb") as f:
        f.seek(offset)
        data = f.read(min(length, 16 * 1024 * 1024))
        eof = len(data) < length or f.read(1) == b""
    return (data, eof)


class DirStream:
    def __init__(self, entries: list[tuple[str, str]]) -> None:
        self.entries = entries
        self.pos = 0


@_guard
def _read_directory(store: Any, self: Any) -> Any:
    ctx = context.current()
    d = _desc(store, self)
    if not d.is_dir:
        raise FsError("not-directory")
    entries = []
    with os.scandir(d.path) as it:
        for entry in sorted(it, key=lambda e: e.name):
            entries.append((_type_of(entry.stat(follow_symlinks=False).st_mode), entry.name))
    return own(ctx.table.push(DirStream(entries)), DIR_STREAM)


def _read_directory_entry(store: Any, self: Any) -> Any:
    stream = context.current().table.get(rep(store, self), DirStream)
    if stream.pos >= len(stream.entries):
        return None
    kind, name = stream.entries[stream.pos]
    stream.pos += 1
    return record({"type": kind, "name": name})


def _is_same_object(store: Any, self: Any, other: Any) -> bool:
    return _desc(store, self).path == _desc(store, other).path


@_guard
def _metadata_hash(store: Any, self: Any) -> Any:
    return _hash(_desc(store, self).path)


@_guard
def _metadata_hash_at(store: Any, self: Any, path_flags: Any, path: str) -> Any:
    d = _desc(store, self)
    return _hash(resolve_confined(d.root, d.path, path))


@_guard
def _advise(store: Any, self: Any, offset: int, length: int, advice: Any) -> Any:
    _desc(store, self)
    return None


def _readlink_at(store: Any, self: Any, path: str) -> Any:
    _desc(store, self)
    return tag("err", "not-permitted")  # result<string, error-code> is tagged (both str)


def _error_code(store: Any, err: Any) -> Any:
    rep(store, err)
    return None


def _drop(rep_: int) -> None:
    context.current().table.discard(rep_)


_READ_ONLY_METHODS = (
    "write-via-stream",
    "append-via-stream",
    "sync-data",
    "set-size",
    "set-times",
    "write",
    "sync",
    "create-directory-at",
    "set-times-at",
    "link-at",
    "remove-directory-at",
    "rename-at",
    "symlink-at",
    "unlink-file-at",
)


class FilesystemCapability(BaseCapability):
    name = "wasi-filesystem-ro"
    inline_safe = True  # in-memory work only: may run on the event loop (see runtime.http.scheduling)
    interfaces = frozenset({"wasi:filesystem/types", "wasi:filesystem/preopens"})

    def implement(self, interface: str, version: str | None) -> InterfaceImpl:
        if interface == "wasi:filesystem/preopens":
            return InterfaceImpl(funcs={"get-directories": _get_directories})
        funcs: dict[str, Any] = {f"[method]descriptor.{m}": _read_only for m in _READ_ONLY_METHODS}
        funcs.update(
            {
                "[method]descriptor.read-via-stream": _read_via_stream,
                "[method]descriptor.advise": _advise,
                "[method]descriptor.get-flags": _get_flags,
                "[method]descriptor.get-type": _get_type,
                "[method]descriptor.stat": _stat_self,
                "[method]descriptor.stat-at": _stat_at,
                "[method]descriptor.open-at": _open_at,
                "[method]descriptor.read": _read,
                "[method]descriptor.read-directory": _read_directory,
                "[method]descriptor.is-same-object": _is_same_object,
                "[method]descriptor.metadata-hash": _metadata_hash,
                "[method]descriptor.metadata-hash-at": _metadata_hash_at,
                "[method]directory-entry-stream.read-directory-entry": _read_directory_entry,
                "[method]descriptor.readlink-at": _readlink_at,
                "filesystem-error-code": _error_code,
            }
        )
        return InterfaceImpl(
            resources={"descriptor": (DESCRIPTOR, _drop), "directory-entry-stream": (DIR_STREAM, _drop)},
            funcs=funcs,
        )
