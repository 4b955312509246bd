"""Cached blobs are verified, not trusted forever (issue 11, item 4): a blob in <cache>/blobs whose
bytes no longer match its digest is never handed out; it is removed and pulled again, or, offline,
the error says so. Against the real docker-registry."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from registry import UnreachableError, load_app, push_app
from registry.verified import CHECKER
from tests.support.registry_apps import AppComponent, sized_module, write_local_app
from tests.support.registry_server import RegistryServer


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob(cache: Path, digest: str) -> Path:
    return cache / "blobs" / "sha256" / digest.split(":", 1)[1]


def damage_in_place(path: Path) -> None:
    """Flip bytes in the middle of the file, keeping its length (cache blobs are read-only)."""
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(size // 2)
        middle = f.read(8)
        f.seek(size // 2)
        f.write(bytes(b ^ 0xFF for b in middle))
    os.chmod(path, 0o444)
    assert path.stat().st_size == size


def truncate(path: Path) -> None:
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    os.truncate(path, path.stat().st_size // 2)
    os.chmod(path, 0o444)


def push(registry_host: str, tmp_path: Path, name: str, wasm: bytes, files: dict[str, bytes] | None = None) -> str:
    lock = write_local_app(tmp_path / name, [AppComponent("web", wasm, files=files or {})], name=name)
    ref = f"{registry_host}/verify-cache/{name}:v1"
    push_app(lock, ref, insecure=True)
    return ref


def assert_intact(path: Path, digest: str) -> None:
    assert path.is_file()
    assert sha(path.read_bytes()) == digest


@pytest.mark.parametrize("damage", [damage_in_place, truncate], ids=["same-length", "truncated"])
def test_damaged_wasm_is_removed_and_pulled_again(
    registry: RegistryServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage
) -> None:  # type: ignore[no-untyped-def]
    wasm = sized_module(4000, f"damaged-{damage.__name__}")
    ref = push(registry.host, tmp_path, f"wasm-{damage.__name__.replace('_', '-')}", wasm)
    neighbour = push(registry.host, tmp_path, f"neighbour-{damage.__name__.replace('_', '-')}",
                     sized_module(500, "intact"))
    cache = tmp_path / "cache"
    first = load_app(ref, cache_dir=cache, insecure=True)
    load_app(neighbour, cache_dir=cache, insecure=True)
    path = first.components["web"].wasm_path
    damage(path)

    with caplog.at_level(logging.WARNING, logger="lepton.registry"):
        again = load_app(ref, cache_dir=cache, insecure=True)
    assert again.components["web"].wasm_path == path
    assert_intact(path, sha(wasm))  # the bytes handed to the runtime are the pushed ones
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"cached blob {sha(wasm)} no longer matches its digest" in w for w in warnings), warnings
    # The neighbour, untouched, is not pulled again and still loads.
    assert_intact(load_app(neighbour, cache_dir=cache, insecure=True).components["web"].wasm_path,
                  sha(sized_module(500, "intact")))


def test_damaged_file_blob_is_not_copied_into_an_app(registry: RegistryServer, tmp_path: Path) -> None:
    data = bytes(range(256)) * 64
    ref = push(registry.host, tmp_path, "files", sized_module(500, "files"), files={"data.bin": data})
    cache = tmp_path / "cache"
    loaded = load_app(ref, cache_dir=cache, insecure=True)
    damage_in_place(blob(cache, sha(data)))
    # The app dir is rebuilt (e.g. after someone cleared apps/): the blob is checked before the copy.
    shutil.rmtree(loaded.app_dir)
    again = load_app(ref, cache_dir=cache, insecure=True)
    files_dir = again.components["web"].files_dir
    assert files_dir is not None and (files_dir / "data.bin").read_bytes() == data
    assert_intact(blob(cache, sha(data)), sha(data))


def test_truncated_blob_shared_by_many_apps(registry: RegistryServer, tmp_path: Path) -> None:
    """One blob, six apps: all of them load intact bytes (it is pulled again, not failed for good)."""
    wasm = sized_module(20000, "shared")
    refs = [push(registry.host, tmp_path, f"shared-{i}", wasm) for i in range(6)]
    cache = tmp_path / "cache"
    for ref in refs:
        load_app(ref, cache_dir=cache, insecure=True)
    truncate(blob(cache, sha(wasm)))
    with ThreadPoolExecutor(max_workers=6) as pool:
        loaded = list(pool.map(lambda ref: load_app(ref, cache_dir=cache, insecure=True), refs))
    assert {app.components["web"].wasm_path for app in loaded} == {blob(cache, sha(wasm))}
    assert_intact(blob(cache, sha(wasm)), sha(wasm))
    assert list((cache / "tmp").iterdir()) == []


def test_damaged_blob_offline_is_reported_and_the_neighbour_still_loads(tmp_path: Path) -> None:
    wasm = sized_module(3000, "offline-damaged")
    cache = tmp_path / "cache"
    server = RegistryServer(tmp_path / "reg").start()
    try:
        ref = push(server.host, tmp_path, "offline", wasm)
        neighbour = push(server.host, tmp_path, "offline-neighbour", sized_module(500, "offline-intact"))
        load_app(ref, cache_dir=cache, insecure=True)
        load_app(neighbour, cache_dir=cache, insecure=True)
    finally:
        server.stop()
    damage_in_place(blob(cache, sha(wasm)))
    with pytest.raises(UnreachableError, match=rf"verify-cache/offline:v1: cannot reach registry.*"
                                               rf"{sha(wasm)} no longer matched its digest \(damaged on disk\)"):
        load_app(ref, cache_dir=cache, insecure=True)
    assert not blob(cache, sha(wasm)).exists()  # removed: never run
    offline = load_app(neighbour, cache_dir=cache, insecure=True)  # served from the cache
    assert_intact(offline.components["web"].wasm_path, sha(sized_module(500, "offline-intact")))


def test_a_blob_is_hashed_once_per_process_until_it_changes(registry: RegistryServer, tmp_path: Path) -> None:
    wasm = sized_module(5000, "hashed-once")
    ref = push(registry.host, tmp_path, "hashed-once", wasm)
    cache = tmp_path / "cache"
    load_app(ref, cache_dir=cache, insecure=True)  # downloaded: verified on the way in
    before = dict(CHECKER.stats)
    for _ in range(20):
        load_app(ref, cache_dir=cache, insecure=True)
    assert CHECKER.stats["hashed"] == before["hashed"]  # recognised by its stat signature
    assert CHECKER.stats["known"] >= before["known"] + 20
    path = blob(cache, sha(wasm))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1))  # touched: check again
    load_app(ref, cache_dir=cache, insecure=True)
    assert CHECKER.stats["hashed"] == before["hashed"] + 1
    assert CHECKER.stats["damaged"] == before["damaged"]
