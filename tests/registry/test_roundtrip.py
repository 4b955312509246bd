"""Push apps to a real docker-registry in the Spin v3 layout and pull them back, byte for byte."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from registry import LoadedApp, load_app, push_app
from registry.locked import LockedApp, b64encode_no_pad
from registry.media import spin_image_config
from tests.support.registry_apps import AppComponent, sized_module, wat_module, write_local_app
from tests.support.registry_server import RegistryServer


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def get_manifest(registry: RegistryServer, repo: str, target: str) -> tuple[bytes, dict[str, Any]]:
    response = requests.get(
        f"{registry.url}/v2/{repo}/manifests/{target}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"},
        timeout=10,
    )
    response.raise_for_status()
    return response.content, response.json()


def get_blob(registry: RegistryServer, repo: str, digest: str) -> bytes:
    response = requests.get(f"{registry.url}/v2/{repo}/blobs/{digest}", timeout=10)
    response.raise_for_status()
    return response.content


BIG_FILE = b"<html>" + b"x" * 4000 + b"</html>"
SMALL_FILE = b"<h1>Hi</h1>\n"


@pytest.fixture
def two_component_app(tmp_path: Path) -> tuple[Path, bytes, bytes]:
    hello = sized_module(600, "hello")
    static = sized_module(700, "static")
    lock = write_local_app(
        tmp_path / "app",
        [
            AppComponent("hello", hello, route="/api/..."),
            AppComponent(
                "static",
                static,
                files={"index.html": SMALL_FILE, "assets/app.js": BIG_FILE, "a.txt": b"A" * 200},
            ),
        ],
        name="hello",
    )
    return lock, hello, static


def test_push_produces_spin_v3_layout(registry: RegistryServer, two_component_app: tuple[Path, bytes, bytes]) -> None:
    lockfile, hello, static = two_component_app
    repo = "layout/hello"
    digest = push_app(lockfile, f"{registry.host}/{repo}:v1", insecure=True)

    body, manifest = get_manifest(registry, repo, "v1")
    assert sha(body) == digest
    # oci-distribution's canonical JSON: sorted keys, no whitespace, no top-level mediaType.
    assert body == json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    assert "mediaType" not in manifest
    assert manifest["schemaVersion"] == 2
    media = [layer["mediaType"] for layer in manifest["layers"]]
    assert media == [
        "application/vnd.wasm.content.layer.v1+wasm",
        "application/vnd.wasm.content.layer.v1+wasm",
        "application/vnd.wasm.content.layer.v1+data",  # a.txt (200 B)
        "application/vnd.wasm.content.layer.v1+data",  # assets/app.js; index.html is inlined
        "application/vnd.fermyon.spin.application.v1+config",
    ]
    assert [layer["digest"] for layer in manifest["layers"][:4]] == [
        sha(hello), sha(static), sha(b"A" * 200), sha(BIG_FILE)
    ]
    annotations = manifest["annotations"]
    assert annotations["org.opencontainers.image.title"] == "hello"
    assert annotations["org.opencontainers.image.version"] == "0.1.0"
    assert annotations["org.opencontainers.image.created"].endswith("+00:00")

    lock_digest = manifest["layers"][-1]["digest"]
    config = get_blob(registry, repo, manifest["config"]["digest"])
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert config == spin_image_config(lock_digest)

    lock_bytes = get_blob(registry, repo, lock_digest)
    lock = json.loads(lock_bytes)
    assert "origin" not in lock["metadata"]
    assert lock["components"][0]["source"] == {"content_type": "application/wasm", "digest": sha(hello)}
    assert lock["components"][1]["files"] == [
        {"digest": sha(b"A" * 200), "path": "a.txt"},
        {"digest": sha(BIG_FILE), "path": "assets/app.js"},
        {"inline": b64encode_no_pad(SMALL_FILE), "digest": sha(SMALL_FILE), "path": "index.html"},
    ]
    # The lock layer is serde's compact output of the same LockedApp.
    assert LockedApp.from_json(lock_bytes).to_bytes() == lock_bytes


def assert_matches_local(loaded: LoadedApp, lockfile: Path) -> None:
    local = json.loads(lockfile.read_text())
    for comp in local["components"]:
        got = loaded.components[comp["id"]]
        wasm = Path(comp["source"]["source"].removeprefix("file://")).read_bytes()
        assert got.wasm_path.read_bytes() == wasm
        assert got.wasm_digest == sha(wasm)
        if "files" in comp:
            src = Path(comp["files"][0]["source"].removeprefix("file://"))
            want = {p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*") if p.is_file()}
            assert got.files_dir is not None
            have = {p.relative_to(got.files_dir).as_posix(): p.read_bytes() for p in got.files_dir.rglob("*") if p.is_file()}
            assert have == want
        else:
            assert got.files_dir is None


def test_pull_round_trip(registry: RegistryServer, two_component_app: tuple[Path, bytes, bytes], tmp_path: Path) -> None:
    lockfile, _, _ = two_component_app
    ref = f"{registry.host}/roundtrip/hello:v1"
    digest = push_app(lockfile, ref, insecure=True)
    loaded = load_app(ref, cache_dir=tmp_path / "cache", insecure=True)

    assert loaded.manifest_digest == digest
    assert loaded.reference == ref
    assert loaded.name == "hello" and loaded.version == "0.1.0"
    _, manifest = get_manifest(registry, "roundtrip/hello", "v1")
    assert loaded.locked.to_bytes() == get_blob(registry, "roundtrip/hello", manifest["layers"][-1]["digest"])
    assert [t.trigger_config["route"] for t in loaded.locked.triggers] == ["/api/...", "/..."]
    assert_matches_local(loaded, lockfile)
    assert loaded.app_dir.is_dir() and (loaded.app_dir / "spin.lock").is_file()

    # Second load: nothing downloaded again, same app dir.
    again = load_app(ref, cache_dir=tmp_path / "cache", insecure=True)
    assert again.app_dir == loaded.app_dir and again.components["hello"].wasm_path == loaded.components["hello"].wasm_path


def test_same_wasm_is_stored_once_across_apps(registry: RegistryServer, tmp_path: Path) -> None:
    shared = sized_module(900, "shared")
    cache = tmp_path / "cache"
    loaded = []
    for name in ("one", "two"):
        lock = write_local_app(tmp_path / name, [AppComponent("web", shared, files={"n.txt": name.encode() * 100})], name=name)
        push_app(lock, f"{registry.host}/dedupe/{name}:v1", insecure=True)
        loaded.append(load_app(f"{registry.host}/dedupe/{name}:v1", cache_dir=cache, insecure=True))
    assert loaded[0].manifest_digest != loaded[1].manifest_digest
    assert loaded[0].components["web"].wasm_path == loaded[1].components["web"].wasm_path
    assert loaded[0].app_dir != loaded[1].app_dir
    blobs = [p for p in (cache / "blobs").rglob("*") if p.is_file()]
    assert sum(1 for p in blobs if p.read_bytes() == shared) == 1


def test_identical_layers_are_pushed_once(registry: RegistryServer, tmp_path: Path) -> None:
    same = sized_module(500, "same")
    lock = write_local_app(tmp_path / "app", [AppComponent("a", same), AppComponent("b", same, route="/b")])
    push_app(lock, f"{registry.host}/dedupe/layers:v1", insecure=True)
    _, manifest = get_manifest(registry, "dedupe/layers", "v1")
    assert [layer["digest"] for layer in manifest["layers"][:-1]] == [sha(same)]


def test_tiny_wasm_is_inlined_and_still_pushed(registry: RegistryServer, tmp_path: Path) -> None:
    tiny = wat_module()
    lock = write_local_app(tmp_path / "app", [AppComponent("tiny", tiny)])
    push_app(lock, f"{registry.host}/tiny/app:v1", insecure=True)
    _, manifest = get_manifest(registry, "tiny/app", "v1")
    assert manifest["layers"][0]["digest"] == sha(tiny)
    lock_json = json.loads(get_blob(registry, "tiny/app", manifest["layers"][-1]["digest"]))
    assert lock_json["components"][0]["source"]["inline"] == b64encode_no_pad(tiny)
    loaded = load_app(f"{registry.host}/tiny/app:v1", cache_dir=tmp_path / "cache", insecure=True)
    assert loaded.components["tiny"].wasm_path.read_bytes() == tiny
