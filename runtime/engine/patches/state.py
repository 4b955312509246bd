"""Whether the patches are installed, and which wasmtime-py versions they were written for."""

from __future__ import annotations

import importlib.metadata
import threading
from typing import Any

#: wasmtime-py versions whose internals the patches were written against and tested with.
PATCHED_VERSIONS = frozenset({"50.0.1"})


class _State:
    applied = False
    lock = threading.Lock()
    originals: list[Any] = []


state = _State()


def wasmtime_version() -> str | None:
    try:
        return importlib.metadata.version("wasmtime")
    except importlib.metadata.PackageNotFoundError:
        return None
