"""Verification, cache hygiene and the offline fallback, against a real registry."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from registry import DigestMismatchError, NotFoundError, UnreachableError, load_app, push_app
from tests.support.registry_apps import AppComponent, sized_module, write_local_app
from tests.support.registry_server import RegistryServer, running_registry


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def cache_files(cache: Path) -> set[str]:
    return {p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file()}


def assert_clean_after_failure(cache: Path, bad_digest: str) -> None:
    assert not (cache / "blobs" / "sha256" / bad_digest.split(":")[1]).exists()
    assert list((cache / "tmp").iterdir()) == []
    assert list((cache / "apps").iterdir()) == []
    assert [p for p in (cache / "refs").rglob("*") if p.is_file()] == []


@pytest.fixture
def big_file_app(tmp_path: Path) -> tuple[Path, bytes]:
    data = bytes(range(256)) * 64  # 16 KiB, pushed as its own layer
    lockfile = write_local_app(
        tmp_path / "app", [AppComponent("web", sized_module(2000, "verify"), files={"data.bin": data})]
    )
    return lockfile, data


def test_corrupted_blob_is_refused_and_cache_left_clean(
    registry: RegistryServer, big_file_app: tuple[Path, bytes], tmp_path: Path
) -> None:
    lockfile, data = big_file_app
    ref = f"{registry.host}/verify/corrupt:v1"
    push_app(lockfile, ref, insecure=True)
    stored = registry.blob_path(sha(data))
    original = stored.read_bytes()
    stored.write_bytes(b"\xff" + original[1:])  # same size, different content
    try:
        cache = tmp_path / "cache"
        with pytest.raises(DigestMismatchError, match=rf"{sha(data)}.*failed verification") as info:
            load_app(ref, cache_dir=cache, insecure=True)
        assert "verify/corrupt:v1" in str(info.value)
        assert_clean_after_failure(cache, sha(data))
    finally:
        stored.write_bytes(original)


def test_truncated_blob_is_refused(registry: RegistryServer, big_file_app: tuple[Path, bytes], tmp_path: Path) -> None:
    lockfile, data = big_file_app
    ref = f"{registry.host}/verify/truncated:v1"
    push_app(lockfile, ref, insecure=True)
    stored = registry.blob_path(sha(data))
    original = stored.read_bytes()
    stored.write_bytes(original[: len(original) // 2])
    try:
        cache = tmp_path / "cache"
        with pytest.raises(DigestMismatchError, match=r"truncated|failed verification"):
            load_app(ref, cache_dir=cache, insecure=True)
        assert_clean_after_failure(cache, sha(data))
    finally:
        stored.write_bytes(original)


def test_missing_blob_is_a_clear_error(tmp_path: Path, big_file_app: tuple[Path, bytes]) -> None:
    lockfile, data = big_file_app
    with running_registry(tmp_path / "reg") as server:  # private: we delete a blob from its storage
        ref = f"{server.host}/verify/missing:v1"
        push_app(lockfile, ref, insecure=True)
        blob = server.blob_path(sha(data))
        blob.unlink()
        blob.parent.rmdir()
        cache = tmp_path / "cache"
        with pytest.raises(NotFoundError, match=rf"verify/missing:v1.*blob {sha(data)}"):
            load_app(ref, cache_dir=cache, insecure=True)
        assert_clean_after_failure(cache, sha(data))


def test_unknown_tag_is_a_clear_error(registry: RegistryServer, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"nothing/here:v9.*manifest v9 not found"):
        load_app(f"{registry.host}/nothing/here:v9", cache_dir=tmp_path / "cache", insecure=True)


def test_offline_fallback_to_cached_tag(
    tmp_path: Path, big_file_app: tuple[Path, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    lockfile, data = big_file_app
    cache = tmp_path / "cache"
    server = RegistryServer(tmp_path / "reg").start()
    try:
        ref = f"{server.host}/offline/app:v1"
        digest = push_app(lockfile, ref, insecure=True)
        online = load_app(ref, cache_dir=cache, insecure=True)
        pinned = f"{server.host}/offline/app@{digest}"
        load_app(pinned, cache_dir=cache, insecure=True)
    finally:
        server.stop()

    with caplog.at_level(logging.WARNING, logger="lepton.registry"):
        offline = load_app(ref, cache_dir=cache, insecure=True)
    assert offline.manifest_digest == digest == online.manifest_digest
    assert offline.app_dir == online.app_dir
    files_dir = offline.components["web"].files_dir
    assert files_dir is not None and (files_dir / "data.bin").read_bytes() == data
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("unreachable" in w and digest in w and "offline/app:v1" in w for w in warnings), warnings

    # A pinned digest that is cached never needs the network (no warning either).
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lepton.registry"):
        assert load_app(pinned, cache_dir=cache, insecure=True).manifest_digest == digest
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]

    # A tag never pulled cannot be served offline.
    with pytest.raises(UnreachableError, match=r"offline/app:v2.*cannot reach registry"):
        load_app(f"{server.host}/offline/app:v2", cache_dir=cache, insecure=True)


def test_tag_moves_are_followed_online(registry: RegistryServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ref = f"{registry.host}/moving/app:latest"
    first = write_local_app(tmp_path / "one", [AppComponent("web", sized_module(300, "one"))], version="1.0.0")
    second = write_local_app(tmp_path / "two", [AppComponent("web", sized_module(300, "two"))], version="2.0.0")
    push_app(first, ref, insecure=True)
    assert load_app(ref, cache_dir=cache, insecure=True).version == "1.0.0"
    d2 = push_app(second, ref, insecure=True)
    loaded = load_app(ref, cache_dir=cache, insecure=True)
    assert (loaded.version, loaded.manifest_digest) == ("2.0.0", d2)
    record = json.loads((cache / "refs" / registry.host / "moving" / "app" / "latest.json").read_text())
    assert record["manifest_digest"] == d2


def test_concurrent_loads_of_one_app_agree(registry: RegistryServer, big_file_app: tuple[Path, bytes], tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    lockfile, data = big_file_app
    ref = f"{registry.host}/verify/concurrent:v1"
    digest = push_app(lockfile, ref, insecure=True)
    cache = tmp_path / "cache"
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: load_app(ref, cache_dir=cache, insecure=True), range(4)))
    assert {r.manifest_digest for r in results} == {digest}
    assert len({r.app_dir for r in results}) == 1
    files_dir = results[0].components["web"].files_dir
    assert files_dir is not None and (files_dir / "data.bin").read_bytes() == data
    assert list((cache / "tmp").iterdir()) == []
    assert len(list((cache / "apps").iterdir())) == 1


def test_stale_tmp_debris_is_swept(tmp_path: Path) -> None:
    import os
    import time

    from registry.cache import STALE_TMP_S, ContentCache

    tmp = tmp_path / "cache" / "tmp"
    tmp.mkdir(parents=True)
    old_file, old_dir, fresh = tmp / "blob-old", tmp / "app-old", tmp / "blob-fresh"
    old_file.write_bytes(b"partial")
    old_dir.mkdir()
    (old_dir / "x").write_bytes(b"x")
    fresh.write_bytes(b"in flight")
    long_ago = time.time() - STALE_TMP_S - 60
    for path in (old_file, old_dir):
        os.utime(path, (long_ago, long_ago))
    ContentCache(tmp_path / "cache")
    assert sorted(p.name for p in tmp.iterdir()) == ["blob-fresh"]
