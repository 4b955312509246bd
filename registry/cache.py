"""The on-disk content cache shared by every app and version.

Layout under the cache root (see docs/reference/routes-toml.md, cache_dir):

    blobs/sha256/<hex>            verified content by digest: wasm, files, locks, configs, manifests
    refs/<registry>/<repo>/<tag>.json   last manifest digest seen for a tag (the offline fallback)
    apps/sha256-<hex>/            one dir per app version (manifest digest): lock + materialised files
    tmp/                          in-flight downloads and app dirs being built (same filesystem, so
                                  the final rename is atomic)

Nothing enters `blobs/` or `apps/` unverified or half-written: writers fill a temp file, verify it,
then rename it into place. A crash leaves at most debris in tmp/, swept after a day. Blobs are
checked again before they are used (`verified_blob`, registry/verified.py): one damaged on disk
since is removed and pulled again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from registry.atomic import atomic_file, atomic_write
from registry.digest import DigestVerifier, split_digest
from registry.reference import Reference
from registry.verified import CHECKER

log = logging.getLogger("lepton.registry")

_CHUNK = 1 << 20
STALE_TMP_S = 24 * 3600
SWEEP_EVERY_S = 3600.0  # how often a process looks for stale debris in tmp/
_PREPARED: dict[Path, float] = {}  # cache root -> when this process last made its dirs and swept tmp/


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/lepton-router, else ~/.cache/lepton-router."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "lepton-router"


@dataclass(frozen=True)
class TagRecord:
    reference: str
    digest: str  # what the tag pointed at (manifest or index)
    manifest_digest: str  # the image manifest actually loaded (differs from digest for an index)
    recorded_at: float


class ContentCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.refs = root / "refs"
        self.apps = root / "apps"
        self.tmp = root / "tmp"
        self.damaged: list[str] = []  # digests of cached blobs found damaged (and removed) meanwhile
        # Every pull opens the cache: make its directories and sweep tmp/ once in a while, not each
        # time (a startup of thousands of apps spent most of each warm pull here).
        swept = _PREPARED.get(root)
        if swept is not None and time.monotonic() - swept < SWEEP_EVERY_S and self.tmp.is_dir():
            return
        for d in (self.blobs, self.refs, self.apps, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self._sweep_tmp()
        _PREPARED[root] = time.monotonic()

    def _sweep_tmp(self) -> None:
        """Remove debris of crashed transfers; only old entries, since other processes may be
        pulling into the same cache right now."""
        cutoff = time.time() - STALE_TMP_S
        for entry in self.tmp.iterdir():
            with contextlib.suppress(OSError):
                if entry.lstat().st_mtime >= cutoff:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    _rmtree(entry)
                else:
                    entry.unlink()

    # --- blobs -------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        algorithm, hex_ = split_digest(digest)
        return self.blobs / algorithm / hex_

    def has_blob(self, digest: str) -> bool:
        """Present, whatever its content: for callers that verify what they read (or only push)."""
        return self.blob_path(digest).is_file()

    def verified_blob(self, digest: str, where: str) -> bool:
        """The blob is cached and its bytes still match its digest (hashed once per process per
        file, see registry/verified.py). A damaged one is removed, so that it gets pulled again,
        and noted in `self.damaged`."""
        verdict = CHECKER.check(self.blob_path(digest), digest)
        if verdict == "damaged":
            self.damaged.append(digest)
            log.warning(
                "%s: cached blob %s no longer matches its digest (damaged on disk); removed it, "
                "it will be pulled again", where, digest,
            )
        return verdict == "ok"

    def read_blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def read_verified_blob(self, digest: str, where: str) -> bytes | None:
        """A small cached blob's bytes (a manifest, a lock), or None if missing or damaged."""
        if not self.verified_blob(digest, where):
            return None
        try:
            return self.read_blob(digest)
        except FileNotFoundError:
            return None

    def put_stream(
        self,
        digest: str,
        size: int | None,
        chunks: Iterable[bytes],
        where: str,
        progress: Callable[[int], None] | None = None,
    ) -> Path:
        """Stream into a temp file, verify size and digest, then rename into place."""
        final = self.blob_path(digest)
        verifier = DigestVerifier(digest, size, where)
        # 0o444: cache content is shared, nobody should write to it.
        with atomic_file(final, tmp_dir=self.tmp, prefix="blob-", mode=0o444) as out:
            for chunk in chunks:
                verifier.update(chunk)
                out.write(chunk)
                if progress is not None:
                    progress(len(chunk))
            verifier.check()  # raising here discards the temp file; nothing reaches `final`
            final.parent.mkdir(parents=True, exist_ok=True)
        CHECKER.remember(final)  # hashed on the way in: its first use need not hash it again
        return final

    def put_bytes(self, digest: str, data: bytes, where: str) -> Path:
        if self.verified_blob(digest, where):
            return self.blob_path(digest)
        return self.put_stream(digest, len(data), [data], where)

    def put_file(self, digest: str, path: Path, where: str) -> Path:
        if self.verified_blob(digest, where):
            return self.blob_path(digest)
        with path.open("rb") as f:
            return self.put_stream(digest, path.stat().st_size, iter(lambda: f.read(_CHUNK), b""), where)

    # --- tags (offline fallback) -------------------------------------------------------------

    def _tag_file(self, ref: Reference) -> Path | None:
        if ref.tag is None:
            return None
        return self.refs / ref.registry / ref.repository / f"{ref.tag}.json"

    def record_tag(self, ref: Reference, digest: str, manifest_digest: str) -> None:
        path = self._tag_file(ref)
        if path is None:
            return
        record = {
            "reference": str(Reference(ref.registry, ref.repository, ref.tag, None)),
            "digest": digest,
            "manifest_digest": manifest_digest,
            "recorded_at": time.time(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        self._atomic_write(path, json.dumps(record, indent=2).encode())

    def lookup_tag(self, ref: Reference) -> TagRecord | None:
        path = self._tag_file(ref)
        if path is None or not path.is_file():
            return None
        try:
            obj = json.loads(path.read_bytes())
            return TagRecord(
                reference=str(obj["reference"]),
                digest=str(obj["digest"]),
                manifest_digest=str(obj["manifest_digest"]),
                recorded_at=float(obj["recorded_at"]),
            )
        except (ValueError, KeyError, TypeError):
            return None  # a damaged record is as good as none: go online

    # --- per-app-version dirs ----------------------------------------------------------------

    def app_dir(self, manifest_digest: str) -> Path:
        algorithm, hex_ = split_digest(manifest_digest)
        return self.apps / f"{algorithm}-{hex_}"

    @contextlib.contextmanager
    def building_app_dir(self, manifest_digest: str) -> Iterator[Path]:
        """Yield a fresh staging dir; on success it becomes app_dir(manifest_digest) atomically.

        If another pull finished the same version first, its dir is kept and ours discarded.
        """
        final = self.app_dir(manifest_digest)
        staging = Path(tempfile.mkdtemp(dir=self.tmp, prefix="app-"))
        try:
            yield staging
            try:
                os.rename(staging, final)
            except OSError:
                if not final.is_dir():
                    raise
        finally:
            if staging.exists():
                _rmtree(staging)

    # --- helpers -----------------------------------------------------------------------------

    def _atomic_write(self, path: Path, data: bytes) -> None:
        atomic_write(path, data, tmp_dir=self.tmp, prefix="write-")


def _rmtree(path: Path) -> None:
    def make_writable_and_retry(func: Callable[..., object], p: str, _exc: object) -> None:
        os.chmod(os.path.dirname(p), 0o755)
        with contextlib.suppress(FileNotFoundError):
            func(p)

    # Python 3.11 has only `onerror` (deprecated in 3.12 but still honoured).
    shutil.rmtree(path, onerror=make_writable_and_retry)
