"""Registry-declared sizes are not believed (issue 11, item 6): caps on manifests and blobs, checked
before downloading, and no body read past its declared size. Against a scripted HTTP peer on
loopback (tests/support/hostile_registry.py) and the real docker-registry."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from registry import DigestMismatchError, RegistryLimits, TooLargeError, load_app, push_app
from registry.media import OCI_CONFIG, WASM_LAYER
from tests.support.hostile_registry import Body, LyingRegistry, descriptor, endless, manifest_json
from tests.support.registry_apps import AppComponent, sized_module, write_local_app
from tests.support.registry_server import RegistryServer

GB = 1000**3
MiB = 1024**2
# What loopback socket buffers (both ends) may hold beyond what the client read.
BUFFERS = 16 * MiB
CONFIG = b'{"architecture":"wasm","os":"wasip1"}'


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_files(cache: Path) -> list[Path]:
    return [p for p in (cache / "blobs").rglob("*") if p.is_file()]


@pytest.fixture
def neighbour(registry: RegistryServer, tmp_path: Path) -> str:
    """An unrelated, well-behaved app in the real registry: it must load after each attack."""
    lock = write_local_app(tmp_path / "neighbour", [AppComponent("web", sized_module(500, "neighbour"))])
    ref = f"{registry.host}/limits/neighbour:v1"
    push_app(lock, ref, insecure=True)
    return ref


def assert_neighbour_loads(ref: str, cache: Path) -> None:
    loaded = load_app(ref, cache_dir=cache, insecure=True)
    assert loaded.components["web"].wasm_path.is_file()


def test_layer_declared_huge_is_refused_before_any_download(neighbour: str, tmp_path: Path) -> None:
    layer = b"\0asm" + b"\0" * 60
    with LyingRegistry() as peer:
        peer.blobs[sha(CONFIG)] = Body(CONFIG)
        peer.blobs[sha(layer)] = Body(endless(64 * MiB))  # what a liar streams if asked
        peer.manifests["v1"] = Body(
            manifest_json(descriptor(CONFIG, OCI_CONFIG), [descriptor(layer, WASM_LAYER, size=10 * GB)]),
            content_type="application/vnd.oci.image.manifest.v1+json",
        )
        cache = tmp_path / "cache"
        with pytest.raises(TooLargeError, match=rf"{sha(layer)} is declared as 10000000000 bytes.*1 GiB.*max_blob_size"):
            load_app(f"{peer.host}/liar/app:v1", cache_dir=cache, insecure=True)
        assert not any("/blobs/" in path for path in peer.requests), peer.requests
        assert sum(peer.sent.values()) < 4096  # the manifest and /v2/ only
    assert [p.name for p in blob_files(cache)] == [manifest_digest_hex(peer)]  # nothing else landed
    assert list((cache / "tmp").iterdir()) == []
    assert_neighbour_loads(neighbour, cache)


def manifest_digest_hex(peer: LyingRegistry) -> str:
    body = peer.manifests["v1"].data
    assert isinstance(body, bytes)
    return hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("announced", [None, 10 * GB], ids=["no-content-length", "content-length-10GB"])
def test_blob_is_not_read_past_its_declared_size(neighbour: str, tmp_path: Path, announced: int | None) -> None:
    declared = MiB
    layer = b"\xab" * declared  # what the manifest describes; the peer sends far more
    with LyingRegistry() as peer:
        peer.blobs[sha(CONFIG)] = Body(CONFIG)
        peer.blobs[sha(layer)] = Body(endless(256 * MiB), content_length=announced)
        peer.manifests["v1"] = Body(manifest_json(descriptor(CONFIG, OCI_CONFIG), [descriptor(layer, WASM_LAYER)]))
        cache = tmp_path / "cache"
        with pytest.raises((DigestMismatchError, TooLargeError), match=rf"{sha(layer)}.*(declares|declared)"):
            load_app(f"{peer.host}/liar/app:v1", cache_dir=cache, insecure=True)
        sent = peer.sent[f"/v2/liar/app/blobs/{sha(layer)}"]
    assert sent < declared + BUFFERS, f"the peer got to send {sent} bytes"
    assert not (cache / "blobs" / "sha256" / sha(layer).split(":")[1]).exists()
    assert list((cache / "tmp").iterdir()) == []
    assert_neighbour_loads(neighbour, cache)


@pytest.mark.parametrize("announced", [None, 10 * GB], ids=["streamed", "content-length-10GB"])
def test_huge_manifest_is_refused(neighbour: str, tmp_path: Path, announced: int | None) -> None:
    cap = 64 * 1024
    with LyingRegistry() as peer:
        peer.manifests["v1"] = Body(endless(64 * MiB), content_length=announced,
                                    content_type="application/vnd.oci.image.manifest.v1+json")
        cache = tmp_path / "cache"
        with pytest.raises(TooLargeError, match=r"liar/app:v1: manifest v1 is larger than the 64 KiB limit.*max_manifest_size"):
            load_app(f"{peer.host}/liar/app:v1", cache_dir=cache, insecure=True,
                     limits=RegistryLimits(max_manifest_bytes=cap))
        sent = peer.sent["/v2/liar/app/manifests/v1"]
    assert sent < cap + BUFFERS, f"the peer got to send {sent} bytes"
    assert blob_files(cache) == []
    assert_neighbour_loads(neighbour, cache)


def test_default_manifest_cap_is_4_mib(tmp_path: Path) -> None:
    with LyingRegistry() as peer:
        peer.manifests["v1"] = Body(endless(6 * MiB))
        with pytest.raises(TooLargeError, match=r"larger than the 4 MiB limit"):
            load_app(f"{peer.host}/liar/app:v1", cache_dir=tmp_path / "cache", insecure=True)


def test_blob_cap_against_the_real_registry(registry: RegistryServer, neighbour: str, tmp_path: Path) -> None:
    data = bytes(range(256)) * 64  # a 16 KiB file layer
    lock = write_local_app(tmp_path / "app", [AppComponent("web", sized_module(500, "capped"), files={"d.bin": data})])
    ref = f"{registry.host}/limits/capped:v1"
    push_app(lock, ref, insecure=True)
    cache = tmp_path / "cache"
    with pytest.raises(TooLargeError, match=rf"limits/capped:v1: layer {sha(data)} is declared as 16384 bytes, "
                                            r"over the 8 KiB limit \(max_blob_size\); nothing was downloaded"):
        load_app(ref, cache_dir=cache, insecure=True, limits=RegistryLimits(max_blob_bytes=8 * 1024))
    assert [p.name for p in blob_files(cache)] == [sha_hex_of_manifest(registry, "limits/capped", "v1")]
    assert list((cache / "apps").iterdir()) == []
    # Under the default cap the same app loads.
    loaded = load_app(ref, cache_dir=cache, insecure=True)
    files_dir = loaded.components["web"].files_dir
    assert files_dir is not None and (files_dir / "d.bin").read_bytes() == data
    assert_neighbour_loads(neighbour, cache)


def sha_hex_of_manifest(registry: RegistryServer, repo: str, tag: str) -> str:
    import urllib.request

    request = urllib.request.Request(f"{registry.url}/v2/{repo}/manifests/{tag}",
                                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return hashlib.sha256(response.read()).hexdigest()


def test_archive_member_over_the_cap_is_not_extracted(registry: RegistryServer, neighbour: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """An archive layer is small on the wire; its files are not (a gzip bomb in miniature)."""
    data = b"\0" * (64 * 1024)  # compresses to well under the cap
    lock = write_local_app(tmp_path / "app", [AppComponent("web", sized_module(500, "archived"), files={"z.bin": data})])
    ref = f"{registry.host}/limits/archived:v1"
    monkeypatch.setenv("SPIN_OCI_ARCHIVE_LAYERS", "1")
    push_app(lock, ref, insecure=True)
    monkeypatch.delenv("SPIN_OCI_ARCHIVE_LAYERS")
    cache = tmp_path / "cache"
    with pytest.raises(TooLargeError, match=r"archive layer sha256:[0-9a-f]+: file '(./)?z.bin' is 65536 bytes, over the 16 KiB limit \(max_blob_size\)"):
        load_app(ref, cache_dir=cache, insecure=True, limits=RegistryLimits(max_blob_bytes=16 * 1024))
    assert not (cache / "blobs" / "sha256" / sha(data).split(":")[1]).exists()
    assert_neighbour_loads(neighbour, cache)
