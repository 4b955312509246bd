"""registry/: OCI references and oci-layout directories -> verified LockedApps on disk.

Public API (all blocking: call from async code via `asyncio.to_thread`):

`load_app(source, *, cache_dir=None, insecure=False, limits=DEFAULT_LIMITS) -> LoadedApp`
    `source` is an OCI reference (`[REGISTRY/]REPO[:TAG][@sha256:...]`, docker defaults:
    docker.io, `library/`, `latest`) or `oci-layout:PATH[:TAG]` / `oci-layout:PATH@sha256:...`.
    Reads Spin v1 (lock = config) and v2+ (lock = last layer) artifacts, image indexes (the
    wasm/wasip1 entry), archive layers and inline files. Every blob is digest-verified before it
    enters the content cache; files are materialised into a per-app-version directory (mount it
    read-only). Only missing blobs are downloaded, concurrently. If the registry is unreachable
    and the tag was pulled before, the cached version is returned with a warning; a cached
    `@sha256:` reference never touches the network. Progress: a live line on a TTY, one INFO
    line per app on logger "lepton.registry" otherwise. `limits` (registry/limits.py): connect
    and read timeouts, a deadline for the whole pull (a timeout counts as unreachable, so a cached
    tag is used), and caps on manifest and blob sizes, checked before downloading. Cached blobs
    are re-verified against their digest before use (once per file per process); a damaged one
    is removed and pulled again.
`default_cache_dir() -> Path`
    `$XDG_CACHE_HOME/lepton-router` or `~/.cache/lepton-router`. Layout in registry/cache.py;
    `<cache>/compiled` is left to runtime/.
`push_app(lockfile, reference, *, insecure=False, annotations=None, limits=DEFAULT_LIMITS) -> str`
    Packs a local LockedApp (spin.lock style, `file://` sources) into the Spin v3 layout and
    pushes it to a registry or `oci-layout:PATH:TAG`; returns the manifest digest.
`mirror_app(src, dest, *, insecure=False, cache_dir=None, limits=DEFAULT_LIMITS) -> str`
    Copies an app registry <-> oci-layout (or registry -> registry), digests unchanged.

Credentials (Spin's order): `$XDG_CONFIG_HOME/fermyon/registry-auth.json`, then Docker's
`$DOCKER_CONFIG/config.json` (or ~/.docker), then anonymous. `insecure=True` means plain HTTP.

Errors are `registry.errors.RegistryError` subclasses whose messages name the source and what
failed: `AuthError`, `NotFoundError`, `UnreachableError` (and its `RegistryTimeoutError`),
`TooLargeError`, `DigestMismatchError`, `LockError`, `UnsafePathError`, `InvalidReferenceError`.

`load_app`, `push_app` and `mirror_app` are imported on first use: they bring in the HTTP and
OCI client libraries, which the pure modules (`registry.locked`, `registry.loaded`) and their
importers (route matching, configuration) must not pay for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.cache import default_cache_dir
from registry.errors import (
    AuthError,
    DigestMismatchError,
    InvalidReferenceError,
    LockError,
    NotFoundError,
    RegistryError,
    RegistryTimeoutError,
    TooLargeError,
    UnreachableError,
    UnsafePathError,
)
from registry.limits import DEFAULT_LIMITS, RegistryLimits
from registry.loaded import LoadedApp, LoadedComponent

if TYPE_CHECKING:
    from registry.mirror import mirror_app
    from registry.pull import load_app
    from registry.push import push_app

__all__ = [
    "DEFAULT_LIMITS",
    "AuthError",
    "DigestMismatchError",
    "InvalidReferenceError",
    "LoadedApp",
    "LoadedComponent",
    "LockError",
    "NotFoundError",
    "RegistryError",
    "RegistryLimits",
    "RegistryTimeoutError",
    "TooLargeError",
    "UnreachableError",
    "UnsafePathError",
    "default_cache_dir",
    "load_app",
    "mirror_app",
    "push_app",
]


def __getattr__(name: str) -> Any:
    if name == "load_app":
        from registry.pull import load_app

        return load_app
    if name == "push_app":
        from registry.push import push_app

        return push_app
    if name == "mirror_app":
        from registry.mirror import mirror_app

        return mirror_app
    raise AttributeError(f"module 'registry' has no attribute {name!r}")
