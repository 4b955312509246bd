"""Moving verified blobs: store -> content cache (pull) and content cache -> store (push, mirror)."""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from registry.cache import ContentCache
from registry.errors import RegistryError, TooLargeError
from registry.limits import DEFAULT_LIMITS, RegistryLimits, describe_size
from registry.media import ARCHIVE_LAYER, Descriptor
from registry.progress import Progress
from registry.stores import Store

# Spin pulls 16 layers at a time; two cores and one loopback registry do not need that many.
MAX_PARALLEL = 8


def parallel(jobs: list[Callable[[], None]]) -> None:
    """Run jobs on a small pool. On the first failure, jobs not yet started are cancelled; the
    failure is raised once the running ones have settled (none is left writing in the background).
    """
    if not jobs:
        return
    if len(jobs) == 1:
        jobs[0]()
        return
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(jobs)), thread_name_prefix="lepton-blob") as pool:
        futures = [pool.submit(job) for job in jobs]
        for future in as_completed(futures):
            if future.exception() is not None:
                for other in futures:
                    other.cancel()
                break
    for future in futures:
        if not future.cancelled() and (error := future.exception()) is not None:
            raise error


def fetch_blobs(
    store: Store,
    cache: ContentCache,
    blobs: Iterable[Descriptor],
    progress: Progress,
    where: str,
    limits: RegistryLimits = DEFAULT_LIMITS,
) -> None:
    """Download every blob not yet in the cache (or damaged there), concurrently, each verified
    before it lands. A blob declared larger than max_blob_bytes fails the whole transfer before
    anything is downloaded; none is read past its declared size."""
    unique: dict[str, Descriptor] = {}
    for blob in blobs:
        unique.setdefault(blob.digest, blob)
    missing = [d for d in unique.values() if not cache.verified_blob(d.digest, where)]
    for desc in missing:
        if desc.size > limits.max_blob_bytes:
            raise TooLargeError(
                f"{where}: layer {desc.digest} is declared as {desc.size} bytes, over the "
                f"{describe_size(limits.max_blob_bytes)} limit (max_blob_size); nothing was downloaded"
            )
    progress.plan(len(unique), sum(d.size for d in missing), len(unique) - len(missing))

    def fetch(desc: Descriptor) -> Callable[[], None]:
        def run() -> None:
            progress.layer_started(desc.digest, desc.size)
            with store.open_blob(desc.digest, desc.size) as chunks:
                cache.put_stream(desc.digest, desc.size, chunks, where, lambda n: progress.advance(n, desc.digest))
            progress.layer_done(desc.digest)

        return run

    parallel([fetch(d) for d in missing])
    # Archive layers: Spin matches their files to lock entries by digest only, so each regular
    # file goes into the cache under its own sha256 (tar paths are ignored, links skipped).
    for desc in unique.values():
        if desc.media_type == ARCHIVE_LAYER:
            unpack_archive(cache, cache.blob_path(desc.digest), f"{where}: archive layer {desc.digest}",
                           limits.max_blob_bytes)


def unpack_archive(cache: ContentCache, archive: Path, where: str, max_file_bytes: int) -> None:
    """Each regular file of a tar.gz into the cache; a file over max_file_bytes (max_blob_size:
    it becomes a blob) is refused before it is extracted."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if not member.isreg():
                    continue
                if member.size > max_file_bytes:
                    raise TooLargeError(
                        f"{where}: file {member.name!r} is {member.size} bytes, over the "
                        f"{describe_size(max_file_bytes)} limit (max_blob_size)"
                    )
                extracted = tar.extractfile(member)
                if extracted is None:
                    continue
                _put_unknown_digest(cache, extracted.read, where)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise RegistryError(f"{where}: cannot read tar.gz archive: {exc}") from exc


def _put_unknown_digest(cache: ContentCache, read: Callable[[int], bytes], where: str) -> None:
    hasher = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=cache.tmp, prefix="unpack-")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := read(1 << 20):
                hasher.update(chunk)
                out.write(chunk)
        digest = "sha256:" + hasher.hexdigest()
        cache.put_file(digest, Path(tmp), where)  # re-hashes: cheap, and keeps one entry path
    finally:
        os.unlink(tmp)


def upload_blobs(
    store: Store, cache: ContentCache, blobs: Iterable[Descriptor], progress: Progress
) -> None:
    unique: dict[str, Descriptor] = {}
    for blob in blobs:
        unique.setdefault(blob.digest, blob)
    progress.plan(len(unique), sum(d.size for d in unique.values()), 0)

    def upload(desc: Descriptor) -> Callable[[], None]:
        def run() -> None:
            progress.layer_started(desc.digest, desc.size)
            store.put_blob(desc.digest, cache.blob_path(desc.digest), lambda n: progress.advance(n, desc.digest))
            progress.layer_done(desc.digest)

        return run

    parallel([upload(d) for d in unique.values()])
