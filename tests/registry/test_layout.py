"""oci-layout directories: push into one, load from one, mirror registry <-> layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registry import NotFoundError, load_app, mirror_app, push_app
from tests.support.registry_apps import AppComponent, sized_module, write_local_app
from tests.support.registry_server import RegistryServer

FILES = {"index.html": b"<h1>layout</h1>", "static/big.css": b"p{}" * 500}


@pytest.fixture
def lockfile(tmp_path: Path) -> Path:
    return write_local_app(tmp_path / "app", [AppComponent("site", sized_module(800, "layout"), files=FILES)])


def files_of(app_files: Path | None) -> dict[str, bytes]:
    assert app_files is not None
    return {p.relative_to(app_files).as_posix(): p.read_bytes() for p in app_files.rglob("*") if p.is_file()}


def test_oci_layout_round_trip(lockfile: Path, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    digest = push_app(lockfile, f"oci-layout:{layout}:v1", annotations={"org.opencontainers.image.created": "x"})
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    assert [(m["digest"], m["annotations"]["org.opencontainers.image.ref.name"]) for m in index["manifests"]] == [
        (digest, "v1")
    ]

    for source in (f"oci-layout:{layout}:v1", f"oci-layout:{layout}", f"oci-layout:{layout}@{digest}"):
        loaded = load_app(source, cache_dir=tmp_path / "cache")
        assert loaded.manifest_digest == digest
        assert files_of(loaded.components["site"].files_dir) == FILES

    # Explicit annotations win, so the same lock packs to the same bytes twice.
    again = push_app(lockfile, f"oci-layout:{layout}:v1-again", annotations={"org.opencontainers.image.created": "x"})
    assert again == digest
    with pytest.raises(NotFoundError, match="no manifest tagged 'v9'"):
        load_app(f"oci-layout:{layout}:v9", cache_dir=tmp_path / "cache")


def test_mirror_layout_to_registry_and_back(registry: RegistryServer, lockfile: Path, tmp_path: Path) -> None:
    source = f"oci-layout:{tmp_path / 'src'}:v1"
    digest = push_app(lockfile, source)
    ref = f"{registry.host}/mirror/site:v1"
    assert mirror_app(source, ref, insecure=True, cache_dir=tmp_path / "mcache") == digest
    pulled = load_app(ref, cache_dir=tmp_path / "cache1", insecure=True)
    assert pulled.manifest_digest == digest
    assert files_of(pulled.components["site"].files_dir) == FILES

    airgap = f"oci-layout:{tmp_path / 'airgap'}:stable"
    assert mirror_app(ref, airgap, insecure=True, cache_dir=tmp_path / "mcache2") == digest
    offline = load_app(airgap, cache_dir=tmp_path / "cache2")
    assert offline.manifest_digest == digest
    assert files_of(offline.components["site"].files_dir) == FILES
    assert offline.locked == pulled.locked


def test_mirror_registry_to_registry(registry: RegistryServer, lockfile: Path, tmp_path: Path) -> None:
    digest = push_app(lockfile, f"{registry.host}/mirror/a:v1", insecure=True)
    assert mirror_app(f"{registry.host}/mirror/a:v1", f"{registry.host}/mirror/b:copy", insecure=True,
                      cache_dir=tmp_path / "mcache") == digest
    assert load_app(f"{registry.host}/mirror/b:copy", cache_dir=tmp_path / "c", insecure=True).manifest_digest == digest


def test_layout_with_corrupt_blob_is_refused(lockfile: Path, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    push_app(lockfile, f"oci-layout:{layout}:v1")
    big = max((p for p in (layout / "blobs" / "sha256").iterdir()), key=lambda p: p.stat().st_size)
    big.write_bytes(big.read_bytes()[:-1] + b"!")
    from registry import DigestMismatchError

    with pytest.raises(DigestMismatchError, match=big.name):
        load_app(f"oci-layout:{layout}:v1", cache_dir=tmp_path / "cache")
