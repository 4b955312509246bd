"""`load_app`: an app source -> a verified LoadedApp on disk (pulling only what is missing)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from registry.artifact import lock_blob_digest, read_lock
from registry.cache import ContentCache, default_cache_dir
from registry.errors import LockError, RegistryError, UnreachableError
from registry.limits import DEFAULT_LIMITS, RegistryLimits
from registry.loaded import LoadedApp
from registry.materialize import build_app_dir, ensure_inline_content, loaded_from_dir, wasm_digests
from registry.media import ImageIndex, ImageManifest, choose_platform, parse_manifest
from registry.progress import Progress
from registry.reference import Reference
from registry.stores import RemoteStore, Store, open_store
from registry.transfer import fetch_blobs

log = logging.getLogger("lepton.registry")


def load_app(
    source: str,
    *,
    cache_dir: Path | None = None,
    insecure: bool = False,
    limits: RegistryLimits = DEFAULT_LIMITS,
) -> LoadedApp:
    """Pull (if needed), verify and materialise an app; see registry/__init__.py for the contract."""
    cache = ContentCache(cache_dir if cache_dir is not None else default_cache_dir())
    store = open_store(source, insecure=insecure, limits=limits)  # its deadline starts now
    if isinstance(store, RemoteStore):
        ref = store.ref
        # A digest reference is immutable: if it is fully cached there is nothing to ask for.
        if ref.digest is not None and (cached := _from_cache(cache, source, ref, ref.digest)):
            log.debug("%s: loaded from cache (pinned digest)", ref)
            return cached
        try:
            return _pull(cache, store, source, limits)
        except UnreachableError as exc:  # refused, timed out, or past the deadline: all offline
            record = cache.lookup_tag(ref)
            cached = _from_cache(cache, source, ref, record.digest) if record else None
            if cached is None:
                if cache.damaged:
                    raise _with_damage(exc, cache.damaged) from exc
                raise
            age_h = (time.time() - record.recorded_at) / 3600 if record else 0.0
            log.warning(
                "%s: registry unreachable (%s); using the cached version %s pulled %.1f h ago",
                ref,
                exc,
                cached.manifest_digest,
                age_h,
            )
            return cached
    return _pull(cache, store, source, limits)


def _with_damage(exc: UnreachableError, damaged: list[str]) -> UnreachableError:
    """The offline error, saying why the cached copy could not stand in."""
    return type(exc)(
        f"{exc}; the cached copy cannot be used: {', '.join(damaged)} no longer matched its digest "
        "(damaged on disk) and was removed; it is pulled again once the registry answers"
    )


def _resolve_cached(cache: ContentCache, digest: str, where: str) -> str | None:
    """Follow a cached manifest (or index) digest to the image manifest digest, offline."""
    body = cache.read_verified_blob(digest, where)
    if body is None:
        return None
    parsed = parse_manifest(body, "", f"cached manifest {digest}")
    if isinstance(parsed, ImageIndex):
        child = choose_platform(parsed, f"cached index {digest}").digest
        return child if cache.verified_blob(child, where) else None
    return digest


def _from_cache(cache: ContentCache, source: str, ref: Reference, digest: str) -> LoadedApp | None:
    try:
        manifest_digest = _resolve_cached(cache, digest, str(ref))
        if manifest_digest is None:
            return None
        return loaded_from_dir(
            cache,
            cache.app_dir(manifest_digest),
            source=source,
            reference=str(ref),
            manifest_digest=manifest_digest,
        )
    except RegistryError:
        return None


def _pull(cache: ContentCache, store: Store, source: str, limits: RegistryLimits) -> LoadedApp:
    label = store.label
    body, media_type, top_digest = store.root_manifest()
    cache.put_bytes(top_digest, body, f"{label}: manifest")
    parsed = parse_manifest(body, media_type, label)
    manifest_digest = top_digest
    if isinstance(parsed, ImageIndex):
        entry = choose_platform(parsed, label)
        manifest_digest = entry.digest
        child = store.manifest(manifest_digest, entry.size)
        cache.put_bytes(manifest_digest, child, f"{label}: manifest {manifest_digest}")
        parsed = parse_manifest(child, "", f"{label}@{manifest_digest}")
        if not isinstance(parsed, ImageManifest):
            raise RegistryError(f"{label}: index entry {manifest_digest} is itself an index")

    app_dir = cache.app_dir(manifest_digest)
    loaded = loaded_from_dir(cache, app_dir, source=source, reference=label, manifest_digest=manifest_digest)
    if loaded is None:
        progress = Progress("pulled", label)
        fetch_blobs(store, cache, [parsed.config, *parsed.layers], progress, label, limits)
        app_name = label.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
        locked = read_lock(parsed, cache.read_blob(lock_blob_digest(parsed)), app_name, label)
        ensure_inline_content(cache, locked, label)
        for what, content in wasm_digests(locked, label):
            if not cache.has_blob(str(content.digest)):
                raise LockError(f"{label}: {what} {content.digest} is not among the artifact's layers")
        if not app_dir.is_dir():
            with cache.building_app_dir(manifest_digest) as staging:
                build_app_dir(cache, locked, staging, app_dir, label)
        loaded = loaded_from_dir(cache, app_dir, source=source, reference=label, manifest_digest=manifest_digest)
        if loaded is None:
            raise RegistryError(f"{label}: app directory {app_dir} is incomplete after pulling")
        progress.finish(f"-> {manifest_digest}")
    else:
        log.info("%s: up to date (%s)", label, manifest_digest)
    if isinstance(store, RemoteStore):
        cache.record_tag(store.ref, top_digest, manifest_digest)
    return loaded
