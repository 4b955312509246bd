"""The precompiled-artifact cache: compile a wasm binary once, load it in milliseconds after.

Compiled components are serialized to ``<cache_dir>/<digest>-<wasmtime version>-<config>.cwasm``
(plus a ``.crc32`` sidecar: checksum and length) and loaded with ``deserialize_file`` (mmap;
milliseconds instead of seconds). Entries are written atomically (temp file + rename). An entry that fails its checksum or
that wasmtime refuses (another version or engine config) is deleted and recompiled.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
import zlib
from dataclasses import dataclass
from pathlib import Path

import wasmtime
from wasmtime import Engine, Module
from wasmtime.component import Component

from registry.atomic import atomic_write
from runtime.engine import byte_bridge
from runtime.engine.config import CONFIG_TAG
from runtime.engine.patches import wasmtime_version

log = logging.getLogger("lepton.runtime")


def is_component(wasm_path: Path) -> bool:
    """Core modules have layer 0 in the header (version 1); components have layer 1."""
    header = _read_head(wasm_path, 8)
    if header[:4] != b"\0asm":
        raise ValueError(f"{wasm_path} is not a wasm binary")
    return header[6:8] == b"\x01\x00"


# The sidecar guards against accidental damage (a torn write, a bad disk), not an attacker: one
# who can write the cache directory can write a matching sidecar too. CRC-32 and the length find
# such damage and cost a fifth of SHA-256 (40 MiB, a Python SDK component: 6 ms instead of 22 ms,
# most of its load time).
SIDECAR_SUFFIX = ".crc32"
LEGACY_SIDECAR_SUFFIX = ".sha256"  # (before 2026-11-29)
_CHUNK = 4 * 1024 * 1024  # (a small entry is read in one call; a big one is never held whole)


def _sidecar_text(crc: int, size: int) -> str:
    return f"crc32:{crc:08x} size:{size}"


def _checksum(data: bytes | bytearray) -> str:
    return _sidecar_text(zlib.crc32(data), len(data))


# Plain os calls: loading a small component from the cache is a fraction of a millisecond, and
# pathlib's and io's layers were a sixth of it.
def _read_head(path: Path, limit: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


def _file_checksum(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY)
    try:
        crc = size = 0
        while chunk := os.read(fd, _CHUNK):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    finally:
        os.close(fd)
    return _sidecar_text(crc, size)


@dataclass(eq=False)
class SharedCompiled:
    """Compiled code as the cache shares it between apps: users hold this handle, not only `.code`.

    The cache maps digests to these handles weakly. It must not map them to the wasmtime objects
    themselves: CPython runs an object's `__del__` before it clears the weak references to it,
    and wasmtime-py's `__del__` closes the object. A load on another thread in that window got
    a Component from the weak map that was being closed, and failed with "already closed" (seen
    under load, when an app's last user went away as another app of the same digest loaded).
    This handle has no `__del__`: its weak references are gone before it lets go of the code.
    """

    code: Component | Module


class CompiledCache:
    def __init__(self, engine: Engine, cache_dir: Path) -> None:
        self.engine = engine
        self.dir = cache_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.version = wasmtime_version() or "unknown"
        self.bridge_bytes = byte_bridge.enabled()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self.stats = {"hits": 0, "misses": 0, "rejected": 0, "shared": 0}
        # Compiled code already in use (another app, or the previous version of a swapped app)
        # is shared instead of deserialized again; entries go away with their last user. The
        # values are SharedCompiled handles, not the wasmtime objects: see SharedCompiled.
        self._live: weakref.WeakValueDictionary[str, SharedCompiled] = weakref.WeakValueDictionary()

    def path_for(self, digest: str, kind: str) -> Path:
        hexdigest = digest.split(":", 1)[-1]
        if kind == "component" and self.bridge_bytes:
            kind = f"component-bridge{byte_bridge.BRIDGE_VERSION}"
        return self.dir / f"{hexdigest}-{kind}-wasmtime{self.version}-{CONFIG_TAG}.cwasm"

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def load(self, wasm_path: Path, digest: str) -> Component | Module:
        """The compiled code alone (shared only while some caller holds a load_shared handle)."""
        return self.load_shared(wasm_path, digest).code

    def load_shared(self, wasm_path: Path, digest: str) -> SharedCompiled:
        """Load a compiled component/module (blocking: call from a worker thread); hold the
        handle for as long as its code is in use, so later loads of the digest share it."""
        component = is_component(wasm_path)
        kind = "component" if component else "module"
        entry = self.path_for(digest, kind)
        with self._lock(str(entry)):
            live = self._live.get(str(entry))
            if live is not None:
                self.stats["shared"] += 1
                return live
            loaded = self._try_load(entry, component)
            if loaded is not None:
                self.stats["hits"] += 1
                return self._share(str(entry), loaded)
            self.stats["misses"] += 1
            started = time.monotonic()
            compiled: Component | Module
            if component:
                compiled, how = self._compile_component(wasm_path)
            else:
                compiled, how = Module.from_file(self.engine, wasm_path), "core module"
            log.info("compiled %s (%s, %s) in %.2fs", wasm_path.name, digest[:19], how, time.monotonic() - started)
            self._store(entry, compiled.serialize())
            return self._share(str(entry), compiled)

    def _share(self, key: str, code: Component | Module) -> SharedCompiled:
        shared = SharedCompiled(code)
        self._live[key] = shared
        return shared

    def _compile_component(self, wasm_path: Path) -> tuple[Component, str]:
        """The component (with the byte bridge when it applies) and which of the two it is."""
        if not self.bridge_bytes:
            return Component.from_file(self.engine, wasm_path), "byte bridge off"
        guest = wasm_path.read_bytes()
        bridged = byte_bridge.bridge(self.engine, guest)
        if bridged is not None:
            try:
                return Component(self.engine, bridged), "byte bridge"
            except wasmtime.WasmtimeError as exc:  # the guest itself is the judge: compile it alone
                log.warning("byte bridge refused for %s, compiling it unbridged: %s", wasm_path.name, exc)
        return Component(self.engine, guest), "no byte bridge"

    def _try_load(self, entry: Path, component: bool) -> Component | Module | None:
        sidecar = entry.with_suffix(SIDECAR_SUFFIX)
        try:
            try:
                expected = _read_head(sidecar, 256).decode().strip()
                actual = _file_checksum(entry)
            except FileNotFoundError:
                if not entry.exists():
                    return None  # not cached (or a store that stopped after the sidecar)
                legacy = entry.with_suffix(LEGACY_SIDECAR_SUFFIX)
                if legacy.exists():  # written before the CRC sidecar: expected once, not damage
                    log.info("precompiled cache entry %s is from an older version; recompiling", entry.name)
                    for p in (entry, legacy):
                        p.unlink(missing_ok=True)
                    return None
                raise
            if actual != expected:
                raise ValueError("checksum mismatch")
            if component:
                return Component.deserialize_file(self.engine, str(entry))
            return Module.deserialize_file(self.engine, str(entry))
        except (OSError, ValueError, wasmtime.WasmtimeError) as exc:
            self.stats["rejected"] += 1
            log.warning("precompiled cache entry %s unusable (%s); recompiling", entry.name, exc)
            for p in (entry, sidecar):
                p.unlink(missing_ok=True)
            return None

    def _store(self, entry: Path, data: bytes | bytearray) -> None:
        checksum = _checksum(data)
        try:
            try:
                self._write(entry, data, checksum)
            except FileNotFoundError:
                # The directory went away while serving (an operator cleaning up, a tmp reaper):
                # make it again rather than run uncached until a restart.
                log.warning("precompiled cache directory %s is missing; recreating it", self.dir)
                self.dir.mkdir(parents=True, exist_ok=True)
                self._write(entry, data, checksum)
        except OSError as exc:  # a read-only or full cache must not stop the app from loading
            log.warning("cannot write precompiled cache entry %s: %s", entry.name, exc)

    def _write(self, entry: Path, data: bytes | bytearray, checksum: str) -> None:
        # Sidecar first: a reader that sees the .cwasm can always check it.
        for target, payload in ((entry.with_suffix(SIDECAR_SUFFIX), checksum.encode()), (entry, bytes(data))):
            atomic_write(target, payload, tmp_dir=self.dir)
