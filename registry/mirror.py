"""`mirror_app`: copy an app between registries and oci-layout dirs, digests preserved.

Manifests are copied as the exact bytes (so the manifest digest, the app's version identity, is the
same at the destination); every blob passes through the content cache, verified, on the way.
An image index is copied with all of its manifests.
"""

from __future__ import annotations

from pathlib import Path

from registry.cache import ContentCache, default_cache_dir
from registry.digest import verify_bytes
from registry.errors import RegistryError
from registry.limits import DEFAULT_LIMITS, Deadline, RegistryLimits
from registry.media import OCI_MANIFEST, ImageIndex, ImageManifest, parse_manifest
from registry.progress import Progress
from registry.stores import open_store
from registry.transfer import fetch_blobs, upload_blobs


def mirror_app(
    src: str,
    dest: str,
    *,
    insecure: bool = False,
    cache_dir: Path | None = None,
    limits: RegistryLimits = DEFAULT_LIMITS,
) -> str:
    """Copy the app at `src` to `dest`; returns the (unchanged) top-level manifest digest."""
    cache = ContentCache(cache_dir if cache_dir is not None else default_cache_dir())
    deadline = Deadline(limits, f"{src} -> {dest}")  # one budget for the whole copy
    source = open_store(src, insecure=insecure, limits=limits, deadline=deadline)
    target = open_store(dest, insecure=insecure, create=True, limits=limits, deadline=deadline)
    body, media_type, top_digest = source.root_manifest()
    parsed = parse_manifest(body, media_type, source.label)
    children: list[tuple[bytes, str, ImageManifest]] = []
    if isinstance(parsed, ImageIndex):
        for entry in parsed.manifests:
            child = source.manifest(entry.digest, entry.size)
            verify_bytes(child, entry.digest, f"{source.label}: manifest")
            child_parsed = parse_manifest(child, entry.media_type, f"{source.label}@{entry.digest}")
            if not isinstance(child_parsed, ImageManifest):
                raise RegistryError(f"{source.label}: nested image indexes are not supported")
            children.append((child, entry.media_type or OCI_MANIFEST, child_parsed))
    else:
        children.append((body, media_type or OCI_MANIFEST, parsed))

    blobs = [d for _, _, m in children for d in (m.config, *m.layers)]
    fetch_blobs(source, cache, blobs, Progress("fetched", source.label), source.label, limits)
    progress = Progress("mirrored", f"{source.label} -> {target.label}")
    upload_blobs(target, cache, blobs, progress)
    if isinstance(parsed, ImageIndex):
        for child, child_type, _ in children:
            target.put_manifest(child, child_type, None)
    stored = target.put_manifest(body, media_type or OCI_MANIFEST, target.tag)
    if stored != top_digest:
        raise RegistryError(f"{target.label}: stored the manifest as {stored}, expected {top_digest}")
    progress.finish(f"-> {top_digest}")
    return top_digest
