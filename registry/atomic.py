"""Whole-or-nothing file writes: a temp file renamed over the target, so a reader (or a crash)
never sees half a file. Shared by the content cache, OCI layouts and runtime's compiled-code
cache (runtime may import registry, not the reverse, so it lives here)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_file(
    path: Path, *, tmp_dir: Path | None = None, prefix: str = ".tmp-", mode: int | None = None
) -> Iterator[BinaryIO]:
    """Yield a binary file whose contents replace `path` when the block succeeds.

    The temp file lives in `tmp_dir` (default: next to `path`; it must be on the same filesystem
    for the rename to be atomic) and gets permissions `mode` (default: mkstemp's 0600) before the
    rename. On any failure, including one raised in the block, the temp file is removed.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent if tmp_dir is None else tmp_dir, prefix=prefix)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(
    path: Path, data: bytes, *, tmp_dir: Path | None = None, prefix: str = ".tmp-", mode: int | None = None
) -> None:
    """Replace `path` with `data` at once (see atomic_file)."""
    with atomic_file(path, tmp_dir=tmp_dir, prefix=prefix, mode=mode) as out:
        out.write(data)
