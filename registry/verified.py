"""Cached blobs are checked against their digest before they are used, once per file per process.

Content-addressed means verified: a blob in `<cache>/blobs` that no longer hashes to its name
(damaged in place, cut short by a full disk or a crash of another tool) must never be run or copied
into an app. Hashing costs about 25-30 ms for a 37 MB Python component, so each file is hashed once
per process and afterwards recognised by its stat signature (device, inode, size, mtime, ctime):
writing to the file or replacing it changes the signature, and the next use hashes it again.
10,000 apps sharing one blob hash it once; concurrent loads of it wait for the hash in progress
instead of repeating it. All of this runs where blobs are pulled and loaded (worker threads, at
load time), never on the request path.

The signature guards against accidents, not an attacker who can write the cache: one who can do
that can also put back the old mtime (ctime, though, only by changing the clock).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path
from typing import Literal

from registry.digest import split_digest

_CHUNK = 1 << 20

Signature = tuple[int, int, int, int, int]
Verdict = Literal["ok", "missing", "damaged"]


def _signature(path: Path) -> Signature:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def hash_file(path: Path, algorithm: str) -> str:
    """Hex digest of a file's content (plain os calls, 1 MiB reads)."""
    hasher = hashlib.new(algorithm)
    fd = os.open(path, os.O_RDONLY)
    try:
        while chunk := os.read(fd, _CHUNK):
            hasher.update(chunk)
    finally:
        os.close(fd)
    return hasher.hexdigest()


class BlobChecker:
    """Process-wide memory of which blob files were verified, by path and stat signature."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._verified: dict[str, Signature] = {}
        self.stats = {"hashed": 0, "hashed_bytes": 0, "known": 0, "damaged": 0}

    def _lock_for(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def check(self, path: Path, digest: str) -> Verdict:
        """"ok" if `path` holds content hashing to `digest`, "missing" if there is no such file,
        "damaged" if it held something else: that file has been removed (unless it was replaced
        meanwhile), so the caller can pull the blob again."""
        algorithm, expected = split_digest(digest)
        key = str(path)
        with self._lock_for(key):
            try:
                before = _signature(path)
                if self._verified.get(key) == before:
                    self.stats["known"] += 1
                    return "ok"
                actual = hash_file(path, algorithm)
                after = _signature(path)
            except FileNotFoundError:
                self._verified.pop(key, None)
                return "missing"
            self.stats["hashed"] += 1
            self.stats["hashed_bytes"] += before[2]
            if actual == expected:
                if after == before:  # not written to while we read it
                    self._verified[key] = after
                return "ok"
            self.stats["damaged"] += 1
            self._verified.pop(key, None)
            with contextlib.suppress(FileNotFoundError):
                # Only the file we hashed: another process may have put a good copy there since.
                if _signature(path)[:2] == before[:2]:
                    os.unlink(path)
            return "damaged"

    def remember(self, path: Path) -> None:
        """`path` was just written from bytes verified on the way in: no need to hash it again."""
        key = str(path)
        with self._lock_for(key), contextlib.suppress(FileNotFoundError):
            self._verified[key] = _signature(path)


CHECKER = BlobChecker()
