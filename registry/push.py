"""`push_app`: a local LockedApp (spin.lock style) -> the Spin v3 OCI layout, byte for byte.

Mirrors spinframework/spin v3.6 `crates/oci/src/client.rs` (`push_locked_core`, `assemble_layers*`,
`push_file_layers`, `push_archive_layer`, `content_ref_for_layer`, `all_annotations`):

* per component: one wasm layer (the source bytes), then its files; content of 128 bytes or less is
  also inlined in the lock, and inlined *files* are not pushed as layers;
* archive mode (env SPIN_OCI_ARCHIVE_LAYERS, or more than 499 layers): one tar.gz per component
  instead of per-file layers, while the lock still lists every file by digest;
* layers de-duplicated (first occurrence kept), the lock (compact, no `metadata.origin`) appended as
  the last layer, an OCI image config carrying its digest in a label, and the manifest serialised as
  canonical JSON without a top-level mediaType, with Spin's inferred annotations.

Two deliberate differences, both because this host has no wasm composer: components with
`dependencies` are pushed uncomposed (as `spin registry push --compose=false` does), and core
modules are pushed as they are rather than componentized. A component without dependencies is
pushed byte-identical to Spin's default (compose of a component with no dependencies is identity).
Files are walked in sorted order (Spin walks in directory order, which the filesystem decides).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import tarfile
import tempfile
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from registry.digest import sha256_digest
from registry.errors import LockError, RegistryError
from registry.limits import DEFAULT_LIMITS, RegistryLimits
from registry.locked import (
    ContentPath,
    ContentRef,
    LockedApp,
    LockedComponent,
    LockedComponentDependency,
    LockedComponentSource,
)
from registry.media import (
    ARCHIVE_LAYER,
    DATA_LAYER,
    OCI_CONFIG,
    OCI_MANIFEST,
    SPIN_APPLICATION,
    WASM_LAYER,
    Descriptor,
    canonical_json,
    spin_image_config,
)
from registry.paths import safe_relative_path
from registry.progress import Progress
from registry.reference import parse_source
from registry.stores import Store, open_store
from registry.transfer import parallel

INLINE_MAX_SIZE = 128  # DEFAULT_CONTENT_REF_INLINE_MAX_SIZE
MAX_LAYER_COUNT = 500  # one slot is kept for the lock layer
ARCHIVE_ENV = "SPIN_OCI_ARCHIVE_LAYERS"


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str
    size: int
    path: Path  # where the bytes are, for upload

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size)


class _Packer:
    def __init__(self, lockfile: Path, scratch: Path) -> None:
        self.lockfile = lockfile
        self.base = lockfile.parent
        self.scratch = scratch
        self._digests: dict[Path, tuple[str, int, bytes | None]] = {}

    def local_path(self, uri: str | None, where: str) -> Path:
        if not uri:
            raise LockError(f"{self.lockfile}: {where} has no `source` to push")
        parsed = urllib.parse.urlparse(uri)
        if parsed.scheme == "file":
            path = Path(urllib.parse.unquote(parsed.path))
        elif parsed.scheme == "":
            path = Path(uri)
        else:
            raise LockError(f"{self.lockfile}: {where}: only file:// sources can be pushed, not {uri!r}")
        return path if path.is_absolute() else self.base / path

    def layer_for_file(self, path: Path, media_type: str, where: str) -> tuple[Layer, ContentRef]:
        if path not in self._digests:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise LockError(f"{self.lockfile}: {where}: cannot read {path}: {exc}") from exc
            inline = data if len(data) <= INLINE_MAX_SIZE else None
            self._digests[path] = (sha256_digest(data), len(data), inline)
        digest, size, inline = self._digests[path]
        return Layer(media_type, digest, size, path), ContentRef(inline=inline, digest=digest)

    def layer_for_bytes(self, data: bytes, media_type: str) -> Layer:
        digest = sha256_digest(data)
        path = self.scratch / digest.replace(":", "-")
        path.write_bytes(data)
        return Layer(media_type, digest, len(data), path)

    def component_files(self, comp: LockedComponent) -> list[tuple[PurePosixPath, Path]]:
        """(path relative to the mount root, host file) as Spin's Copy strategy would lay them out."""
        where = f"component {comp.id!r}"
        tree: dict[PurePosixPath, Path] = {}
        for i, mount in enumerate(comp.files):
            host = self.local_path(mount.content.source, f"{where} files[{i}]")
            guest = PurePosixPath("/") / mount.path
            if host.is_dir():
                for dirpath, dirnames, filenames in os.walk(host, followlinks=True):
                    dirnames.sort()
                    for name in filenames:
                        file = Path(dirpath) / name
                        if file.is_file():
                            rel = file.relative_to(host).as_posix()
                            tree[safe_relative_path(str(guest / rel).lstrip("/"), where)] = file
            elif host.is_file():
                tree[safe_relative_path(str(guest).lstrip("/"), where)] = host
            else:
                raise LockError(f"{self.lockfile}: {where} files[{i}]: {host} does not exist")
        return [(rel, tree[rel]) for rel in sorted(tree, key=lambda p: p.parts)]

    def archive(self, comp_id: str, files: list[tuple[PurePosixPath, Path]]) -> Layer:
        """tar.gz of the component's files under `./`, like tar-rs `append_dir_all(".", dir)`."""
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(
            fileobj=gz, mode="w", format=tarfile.GNU_FORMAT
        ) as tar:
            dirs_done: set[PurePosixPath] = set()
            for rel, host in files:
                for parent in reversed(rel.parents[:-1] if len(rel.parts) > 1 else ()):
                    if parent not in dirs_done:
                        info = tarfile.TarInfo(f"./{parent}")
                        info.type, info.mode = tarfile.DIRTYPE, 0o755
                        tar.addfile(info)
                        dirs_done.add(parent)
                info = tarfile.TarInfo(f"./{rel}")
                info.size, info.mode = host.stat().st_size, 0o644
                with host.open("rb") as f:
                    tar.addfile(info, f)
        return self.layer_for_bytes(buf.getvalue(), ARCHIVE_LAYER)

    def assemble(self, locked: LockedApp, archive: bool) -> tuple[list[Layer], list[LockedComponent]]:
        layers: list[Layer] = []
        components: list[LockedComponent] = []
        for comp in locked.components:
            where = f"component {comp.id!r}"
            source_path = self.local_path(comp.source.content.source, f"{where} source")
            layer, content = self.layer_for_file(source_path, WASM_LAYER, f"{where} source")
            layers.append(layer)
            deps: dict[str, LockedComponentDependency] = {}
            for name in sorted(comp.dependencies):
                dep = comp.dependencies[name]
                dep_path = self.local_path(dep.source.content.source, f"{where} dependency {name!r}")
                dep_layer, dep_content = self.layer_for_file(dep_path, WASM_LAYER, f"{where} dependency {name!r}")
                layers.append(dep_layer)
                deps[name] = dataclasses.replace(
                    dep, source=LockedComponentSource(dep.source.content_type, dep_content)
                )
            files = self.component_files(comp)
            entries: list[ContentPath] = []
            for rel, host in files:
                file_layer, file_content = self.layer_for_file(host, DATA_LAYER, f"{where} file {rel}")
                entries.append(ContentPath(content=file_content, path=str(rel)))
                # Spin does not push inlined files: some registries reject tiny blobs.
                if not archive and file_content.inline is None:
                    layers.append(file_layer)
            if archive and files:
                layers.append(self.archive(comp.id, files))
            components.append(
                dataclasses.replace(
                    comp,
                    source=LockedComponentSource(comp.source.content_type, content),
                    dependencies=deps,
                    files=tuple(entries),
                )
            )
        unique: dict[tuple[str, str], Layer] = {}
        for layer in layers:
            unique.setdefault((layer.digest, layer.media_type), layer)
        return list(unique.values()), components


def rfc3339_now() -> str:
    """chrono's `Utc::now().to_rfc3339()`: fractional seconds with 0/3/6/9 digits, `+00:00`."""
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac == 0:
        return base + "+00:00"
    if frac % 1_000_000 == 0:
        return f"{base}.{frac // 1_000_000:03d}+00:00"
    if frac % 1_000 == 0:
        return f"{base}.{frac // 1_000:06d}+00:00"
    return f"{base}.{frac:09d}+00:00"


def spin_annotations(locked: LockedApp, explicit: Mapping[str, str] | None) -> dict[str, str]:
    """Spin's `all_annotations(..., InferPredefinedAnnotations::All)`: explicit ones win."""
    out = dict(explicit or {})
    meta = locked.metadata

    def add(key: str, value: Any) -> None:
        if isinstance(value, str):
            out.setdefault(key, value)

    authors = meta.get("authors")
    if isinstance(authors, list) and authors and all(isinstance(a, str) for a in authors):
        add("org.opencontainers.image.authors", ", ".join(authors))
    add("org.opencontainers.image.title", meta.get("name"))
    add("org.opencontainers.image.description", meta.get("description"))
    add("org.opencontainers.image.version", meta.get("version"))
    if "org.opencontainers.image.created" not in out:
        out["org.opencontainers.image.created"] = rfc3339_now()
    return out


def build_manifest(config: Layer, layers: list[Layer], annotations: Mapping[str, str]) -> bytes:
    def desc(layer: Layer) -> dict[str, Any]:
        return {"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}

    return canonical_json(
        {
            "schemaVersion": 2,
            "config": desc(config),
            "layers": [desc(layer) for layer in layers],
            "annotations": dict(annotations),
        }
    )


def push_app(
    lockfile: Path,
    reference: str,
    *,
    insecure: bool = False,
    annotations: Mapping[str, str] | None = None,
    limits: RegistryLimits = DEFAULT_LIMITS,
) -> str:
    """Pack `lockfile` as Spin would and push it to `reference`; returns the manifest digest."""
    lockfile = Path(lockfile)
    parse_source(reference)  # a bad reference fails before any packing
    try:
        locked = LockedApp.from_json(lockfile.read_bytes())
    except OSError as exc:
        raise LockError(f"cannot read lock file {lockfile}: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="lepton-push-") as scratch:
        packer = _Packer(lockfile, Path(scratch))
        archive = bool(os.environ.get(ARCHIVE_ENV) is not None)
        layers, components = packer.assemble(locked, archive)
        if not archive and len(layers) > MAX_LAYER_COUNT - 1:
            layers, components = packer.assemble(locked, True)
        pushed = dataclasses.replace(locked, components=tuple(components))
        pushed = dataclasses.replace(pushed, metadata={k: v for k, v in pushed.metadata.items() if k != "origin"})
        lock_layer = packer.layer_for_bytes(pushed.to_bytes(), SPIN_APPLICATION)
        layers.append(lock_layer)
        config = packer.layer_for_bytes(spin_image_config(lock_layer.digest), OCI_CONFIG)
        manifest = build_manifest(config, layers, spin_annotations(pushed, annotations))
        # Opened after packing, so the registry deadline covers the upload only.
        store = open_store(reference, insecure=insecure, create=True, limits=limits)
        return _upload(store, [config, *layers], manifest)


def _upload(store: Store, blobs: list[Layer], manifest: bytes) -> str:
    progress = Progress("pushed", store.label)
    unique = {b.digest: b for b in blobs}
    progress.plan(len(unique), sum(b.size for b in unique.values()), 0)
    def job(blob: Layer) -> Any:
        def run() -> None:
            progress.layer_started(blob.digest, blob.size)
            store.put_blob(blob.digest, blob.path, lambda n: progress.advance(n, blob.digest))
            progress.layer_done(blob.digest)

        return run

    parallel([job(b) for b in unique.values()])
    digest = store.put_manifest(manifest, OCI_MANIFEST, store.tag)
    if digest != sha256_digest(manifest):
        raise RegistryError(f"{store.label}: registry stored the manifest under {digest}, expected "
                            f"{sha256_digest(manifest)}")
    progress.finish(f"-> {digest}")
    return digest
