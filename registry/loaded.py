"""What registry/ hands to runtime/: a LockedApp whose content is local, verified files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from registry.locked import LockedApp, LockedComponent


@dataclass(frozen=True)
class LoadedComponent:
    id: str
    wasm_path: Path  # digest-verified file in the content cache; never modified
    wasm_digest: str  # "sha256:<hex>"; also the key of the precompiled cache
    files_dir: Path | None  # the component's `files`, materialised; mount read-only at "/"
    locked: LockedComponent  # metadata, env, config, ... as the lock has them
    # Uncomposed dependencies (`spin registry push --compose=false`): name -> verified wasm file.
    dependency_paths: Mapping[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadedApp:
    source: str  # as the user wrote it: "ghcr.io/acme/hello:v1", "oci-layout:examples/hello:v1"
    reference: str  # fully qualified, e.g. "docker.io/library/hello:latest"
    manifest_digest: str  # "sha256:<hex>" of the manifest actually used: the app's version identity
    locked: LockedApp  # registry form (content by digest), origin removed
    components: Mapping[str, LoadedComponent]
    app_dir: Path  # per-app-version directory (holds the files mounts and the resolved lock)

    @property
    def name(self) -> str:
        return self.locked.name

    @property
    def version(self) -> str | None:
        return self.locked.version
