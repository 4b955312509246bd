"""Building a per-app-version directory from verified cache content.

    <app dir>/locked.json            the lock in registry form (content by digest, no origin)
    <app dir>/spin.lock              the same lock resolved to local files, as `spin up` writes it
    <app dir>/files/<component-id>/  that component's `files`, to be mounted read-only at "/"
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from registry.cache import ContentCache
from registry.digest import split_digest, verify_bytes
from registry.errors import LockError, UnsafePathError
from registry.loaded import LoadedApp, LoadedComponent
from registry.locked import ContentRef, LockedApp
from registry.paths import safe_component_id, safe_relative_path

LOCK_NAME = "locked.json"
RESOLVED_LOCK_NAME = "spin.lock"
FILES_DIR = "files"


def wasm_digests(locked: LockedApp, where: str) -> list[tuple[str, ContentRef]]:
    """(description, content) of every wasm the app needs: component sources and dependencies."""
    out = []
    for comp in locked.components:
        out.append((f"component {comp.id!r} source", comp.source.content))
        for name in sorted(comp.dependencies):
            out.append((f"component {comp.id!r} dependency {name!r}", comp.dependencies[name].source.content))
    for what, content in out:
        if content.digest is None:
            raise LockError(f"{where}: {what} has no digest")
        split_digest(content.digest, f"{where}: {what}")
    return out


def ensure_inline_content(cache: ContentCache, locked: LockedApp, where: str) -> None:
    """Content carried inline in the lock goes to the cache too (after checking its digest)."""
    for what, content in wasm_digests(locked, where):
        if content.inline is not None and content.digest:
            cache.put_bytes(content.digest, content.inline, f"{where}: {what} (inline)")


def build_app_dir(cache: ContentCache, locked: LockedApp, staging: Path, final: Path, where: str) -> None:
    """Fill `staging` (an empty dir, renamed to `final` afterwards) with the lock and files."""
    seen_ids: set[str] = set()
    resolved_components: list[dict[str, Any]] = []
    for comp in locked.components:
        cid = safe_component_id(comp.id, where)
        if cid in seen_ids:
            raise LockError(f"{where}: duplicate component id {cid!r}")
        seen_ids.add(cid)
        entry = comp.to_json()
        entry["source"] = {
            "content_type": comp.source.content_type,
            "source": cache.blob_path(str(comp.source.content.digest)).as_uri(),
        }
        if comp.files:
            mount = staging / FILES_DIR / cid
            mount.mkdir(parents=True)
            written: dict[str, str | None] = {}
            for i, f in enumerate(comp.files):
                fwhere = f"{where}: component {cid!r} files[{i}]"
                rel = safe_relative_path(f.path, fwhere)
                digest = f.content.digest
                if str(rel) in written:
                    if written[str(rel)] == digest and digest is not None:
                        continue
                    raise LockError(f"{fwhere}: path {f.path!r} appears twice with different content")
                written[str(rel)] = digest
                _write_file(cache, mount, rel.parts, f.content, fwhere)
            entry["files"] = [{"source": (final / FILES_DIR / cid).as_uri(), "path": "/"}]
        resolved_components.append(entry)
    resolved = locked.to_json()
    resolved["components"] = resolved_components
    (staging / LOCK_NAME).write_bytes(locked.to_bytes())
    (staging / RESOLVED_LOCK_NAME).write_text(json.dumps(resolved, indent=2) + "\n")


def _write_file(cache: ContentCache, mount: Path, parts: tuple[str, ...], content: ContentRef, where: str) -> None:
    parent = mount
    for part in parts[:-1]:
        parent = parent / part
        if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
            raise UnsafePathError(f"{where}: {'/'.join(parts)!r} runs through a file or link")
        parent.mkdir(exist_ok=True)
    target = parent / parts[-1]
    if content.inline is not None:
        if content.digest is not None:
            verify_bytes(content.inline, content.digest, f"{where}: inline content")
        data_source: bytes | Path = content.inline
    elif content.digest is not None:
        blob = cache.blob_path(content.digest)
        if not blob.is_file():
            raise LockError(f"{where}: content {content.digest} for {'/'.join(parts)!r} is not in the artifact")
        data_source = blob
    else:
        raise LockError(f"{where}: file {'/'.join(parts)!r} has neither inline content nor a digest")
    # O_EXCL|O_NOFOLLOW: never write through a link or over something already there.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out:
        if isinstance(data_source, bytes):
            out.write(data_source)
        else:
            with data_source.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    os.chmod(target, 0o444)


def loaded_from_dir(
    cache: ContentCache,
    app_dir: Path,
    *,
    source: str,
    reference: str,
    manifest_digest: str,
) -> LoadedApp | None:
    """The LoadedApp for a complete app dir, or None if it (or a wasm blob it needs) is missing or
    damaged."""
    lock_path = app_dir / LOCK_NAME
    if not lock_path.is_file():
        return None
    locked = LockedApp.from_json(lock_path.read_bytes())
    components: dict[str, LoadedComponent] = {}
    for comp in locked.components:
        # The wasm runs straight from the cache: its bytes must still match its digest (a
        # damaged blob is removed here, and None makes the caller pull it again).
        where = f"{reference}: component {comp.id!r}"
        digest = comp.source.content.digest
        if digest is None or not cache.verified_blob(digest, where):
            return None
        if not all(d.source.content.digest is not None and cache.verified_blob(d.source.content.digest, where)
                   for d in comp.dependencies.values()):
            return None
        files_dir = app_dir / FILES_DIR / comp.id if comp.files else None
        components[comp.id] = LoadedComponent(
            id=comp.id,
            wasm_path=cache.blob_path(digest),
            wasm_digest=digest,
            files_dir=files_dir,
            locked=comp,
            dependency_paths=_dependency_paths(cache, comp.dependencies),
        )
    return LoadedApp(
        source=source,
        reference=reference,
        manifest_digest=manifest_digest,
        locked=locked,
        components=components,
        app_dir=app_dir,
    )


def _dependency_paths(cache: ContentCache, deps: Mapping[str, Any]) -> dict[str, Path]:
    return {name: cache.blob_path(str(dep.source.content.digest)) for name, dep in deps.items()}
