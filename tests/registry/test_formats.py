"""Artifacts Spin can produce besides the default v3 push: v1 layout, archive layers, image
indexes; and locks that must be refused."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from registry import LockError, UnsafePathError, load_app, push_app
from registry.errors import DigestMismatchError
from tests.support.registry_apps import AppComponent, sized_module, write_local_app
from tests.support.registry_server import RegistryServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
WASM = "application/vnd.wasm.content.layer.v1+wasm"
DATA = "application/vnd.wasm.content.layer.v1+data"
SPIN_LOCK = "application/vnd.fermyon.spin.application.v1+config"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def v1_lock(wasm: bytes, files: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A lock shaped like Spin 1.3's (SIP 008's example)."""
    return {
        "spin_lock_version": 0,
        "metadata": {"name": "v1app", "version": "0.1.0", "trigger": {"base": "/", "type": "http"}},
        "triggers": [
            {
                "id": "trigger--web",
                "trigger_type": "http",
                "trigger_config": {"component": "web", "executor": None, "route": "/..."},
            }
        ],
        "components": [
            {
                "id": "web",
                "metadata": {"allowed_http_hosts": [], "key_value_stores": [], "databases": []},
                "source": {"content_type": "application/wasm", "digest": sha(wasm)},
                "files": files,
            }
        ],
        **extra,
    }


def push_v1(registry: RegistryServer, repo: str, lock: dict[str, Any], blobs: list[tuple[str, bytes]]) -> str:
    """Spin 1.x layout: the lock *is* the config blob; no lock layer."""
    lock_bytes = json.dumps(lock).encode()
    config = {"mediaType": SPIN_LOCK, **registry.put_blob(repo, lock_bytes)}
    layers = [{"mediaType": mt, **registry.put_blob(repo, data)} for mt, data in blobs]
    manifest = json.dumps({"schemaVersion": 2, "config": config, "layers": layers}).encode()
    return registry.put_manifest(repo, "v1", manifest, OCI_MANIFEST)


def test_spin_v1_layout_config_is_the_lock(registry: RegistryServer, tmp_path: Path) -> None:
    wasm = sized_module(400, "v1")
    data = b'{"hello": "world"}' * 20
    lock = v1_lock(wasm, [{"digest": sha(data), "path": "my-file.json"}, {"digest": sha(data), "path": "sub/copy.json"}])
    digest = push_v1(registry, "formats/v1", lock, [(WASM, wasm), (DATA, data)])

    loaded = load_app(f"{registry.host}/formats/v1:v1", cache_dir=tmp_path / "cache", insecure=True)
    assert loaded.manifest_digest == digest
    assert loaded.name == "v1app"
    comp = loaded.components["web"]
    assert comp.wasm_path.read_bytes() == wasm
    assert comp.files_dir is not None
    assert (comp.files_dir / "my-file.json").read_bytes() == data
    assert (comp.files_dir / "sub" / "copy.json").read_bytes() == data
    assert loaded.locked.triggers[0].id == "trigger--web"
    assert comp.locked.metadata["allowed_http_hosts"] == []


def test_archive_layers(registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"index.html": b"<p>hi</p>", "css/site.css": b"body{}" * 100, "img/a/b.bin": bytes(range(256)) * 8}
    lockfile = write_local_app(tmp_path / "app", [AppComponent("site", sized_module(300, "arch"), files=files)])
    monkeypatch.setenv("SPIN_OCI_ARCHIVE_LAYERS", "1")
    push_app(lockfile, f"{registry.host}/formats/archive:v1", insecure=True)
    monkeypatch.delenv("SPIN_OCI_ARCHIVE_LAYERS")

    loaded = load_app(f"{registry.host}/formats/archive:v1", cache_dir=tmp_path / "cache", insecure=True)
    manifest = json.loads(loaded.app_dir.parent.parent.joinpath(
        "blobs", *loaded.manifest_digest.split(":")).read_bytes())
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        WASM, "application/vnd.wasm.content.bundle.v1.tar+gzip", SPIN_LOCK
    ]
    # Every file is still listed by digest (the small one inline too).
    listed = {f.path: f.content.digest for f in loaded.locked.components[0].files}
    assert listed == {path: sha(data) for path, data in files.items()}
    files_dir = loaded.components["site"].files_dir
    assert files_dir is not None
    assert {p.relative_to(files_dir).as_posix(): p.read_bytes() for p in files_dir.rglob("*") if p.is_file()} == files


def test_more_than_499_layers_switches_to_archive(registry: RegistryServer, tmp_path: Path) -> None:
    files = {f"f/{i:03d}.txt": f"file {i} ".encode() * 30 for i in range(500)}
    lockfile = write_local_app(tmp_path / "app", [AppComponent("many", sized_module(300, "many"), files=files)])
    push_app(lockfile, f"{registry.host}/formats/many:v1", insecure=True)
    loaded = load_app(f"{registry.host}/formats/many:v1", cache_dir=tmp_path / "cache", insecure=True)
    files_dir = loaded.components["many"].files_dir
    assert files_dir is not None
    assert len(list((files_dir / "f").iterdir())) == 500
    assert (files_dir / "f" / "123.txt").read_bytes() == files["f/123.txt"]
    blobs_dir = tmp_path / "cache" / "blobs" / "sha256"
    manifest = json.loads((blobs_dir / loaded.manifest_digest.split(":")[1]).read_bytes())
    assert len(manifest["layers"]) == 3


def test_image_index_resolves_to_the_wasm_manifest(registry: RegistryServer, tmp_path: Path) -> None:
    lockfile = write_local_app(tmp_path / "app", [AppComponent("web", sized_module(300, "idx"))])
    inner = push_app(lockfile, f"{registry.host}/formats/index:inner", insecure=True)
    size = len(registry_manifest_bytes(registry, "formats/index", inner))
    decoy = {"mediaType": OCI_MANIFEST, **registry.put_blob("formats/index", b"{}")}
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {**decoy, "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": inner, "size": size,
             "platform": {"architecture": "wasm", "os": "wasip1"}},
        ],
    }).encode()
    registry.put_manifest("formats/index", "multi", index, OCI_INDEX)
    loaded = load_app(f"{registry.host}/formats/index:multi", cache_dir=tmp_path / "cache", insecure=True)
    assert loaded.manifest_digest == inner
    assert loaded.components["web"].wasm_path.is_file()


def registry_manifest_bytes(registry: RegistryServer, repo: str, digest: str) -> bytes:
    import urllib.request

    req = urllib.request.Request(f"{registry.url}/v2/{repo}/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
    with urllib.request.urlopen(req, timeout=10) as response:
        return bytes(response.read())


@pytest.mark.parametrize("bad_path", ["../escape.txt", "/etc/passwd", "a/../../escape.txt", ""])
def test_unsafe_file_paths_are_refused(registry: RegistryServer, tmp_path: Path, bad_path: str) -> None:
    wasm = sized_module(300, "unsafe")
    data = b"payload " * 40
    lock = v1_lock(wasm, [{"digest": sha(data), "path": bad_path}])
    repo = f"formats/unsafe{hashlib.sha256(bad_path.encode()).hexdigest()[:8]}"
    push_v1(registry, repo, lock, [(WASM, wasm), (DATA, data)])
    cache = tmp_path / "cache"
    with pytest.raises(UnsafePathError, match="file path"):
        load_app(f"{registry.host}/{repo}:v1", cache_dir=cache, insecure=True)
    assert not (tmp_path / "escape.txt").exists()
    assert list((cache / "apps").iterdir()) == []
    assert list((cache / "tmp").iterdir()) == []


def test_inline_content_must_match_its_digest(registry: RegistryServer, tmp_path: Path) -> None:
    wasm = sized_module(300, "inline")
    lock = v1_lock(wasm, [{
        "inline": base64.b64encode(b"not what the digest says").decode().rstrip("="),
        "digest": sha(b"something else"),
        "path": "x.txt",
    }])
    push_v1(registry, "formats/inline-bad", lock, [(WASM, wasm)])
    with pytest.raises(DigestMismatchError, match="inline"):
        load_app(f"{registry.host}/formats/inline-bad:v1", cache_dir=tmp_path / "cache", insecure=True)


def test_inline_only_files_need_no_layers(registry: RegistryServer, tmp_path: Path) -> None:
    wasm = sized_module(300, "inline-ok")
    small = b"tiny\n"
    lock = v1_lock(wasm, [{"inline": base64.b64encode(small).decode().rstrip("="), "digest": sha(small), "path": "t.txt"}])
    push_v1(registry, "formats/inline-ok", lock, [(WASM, wasm)])
    loaded = load_app(f"{registry.host}/formats/inline-ok:v1", cache_dir=tmp_path / "cache", insecure=True)
    files_dir = loaded.components["web"].files_dir
    assert files_dir is not None and (files_dir / "t.txt").read_bytes() == small


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"spin_lock_version": 1, "must_understand": ["time_travel"]}, "time_travel"),
        ({"spin_lock_version": 1, "must_understand": ["host_requirements"],
          "host_requirements": {"quantum_entanglement": "required"}}, "quantum_entanglement"),
        ({"spin_lock_version": 7}, "spin_lock_version 7"),
    ],
)
def test_unsupported_lock_features_are_refused_by_name(
    registry: RegistryServer, tmp_path: Path, extra: dict[str, Any], named: str
) -> None:
    wasm = sized_module(300, "features")
    lock = v1_lock(wasm, [])
    lock.update(extra)
    repo = f"formats/features{hashlib.sha256(named.encode()).hexdigest()[:8]}"
    push_v1(registry, repo, lock, [(WASM, wasm)])
    with pytest.raises(LockError, match=named):
        load_app(f"{registry.host}/{repo}:v1", cache_dir=tmp_path / "cache", insecure=True)


def test_optional_host_requirements_are_ignored(registry: RegistryServer, tmp_path: Path) -> None:
    wasm = sized_module(300, "optional")
    lock = v1_lock(wasm, [], spin_lock_version=1, must_understand=["host_requirements"],
                   host_requirements={"something_new": "optional"})
    push_v1(registry, "formats/optional", lock, [(WASM, wasm)])
    loaded = load_app(f"{registry.host}/formats/optional:v1", cache_dir=tmp_path / "cache", insecure=True)
    assert loaded.locked.host_requirements == {}


def test_bare_wasm_package_runs_as_one_component(registry: RegistryServer, tmp_path: Path) -> None:
    """A `wkg`-style package (wasm config, one application/wasm layer), as Spin >= 3.6 accepts."""
    wasm = sized_module(500, "wkg")
    repo = "formats/wkgpkg"
    config = json.dumps({"architecture": "wasm", "os": "wasip2", "layerDigests": [sha(wasm)]}).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.wasm.config.v0+json", **registry.put_blob(repo, config)},
        "layers": [{"mediaType": "application/wasm", **registry.put_blob(repo, wasm)}],
    }).encode()
    registry.put_manifest(repo, "v1", manifest, OCI_MANIFEST)
    loaded = load_app(f"{registry.host}/{repo}:v1", cache_dir=tmp_path / "cache", insecure=True)
    assert loaded.name == "wkgpkg"
    (trigger,) = loaded.locked.triggers
    assert trigger.trigger_config == {"component": "http-trigger1-component", "route": "/..."}
    assert loaded.components["http-trigger1-component"].wasm_path.read_bytes() == wasm


def test_artifact_that_is_not_an_app_is_refused(registry: RegistryServer, tmp_path: Path) -> None:
    repo = "formats/notapp"
    layers = [{"mediaType": DATA, **registry.put_blob(repo, b"one" * 100)},
              {"mediaType": DATA, **registry.put_blob(repo, b"two" * 100)}]
    manifest = json.dumps({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **registry.put_blob(repo, b"{}")},
        "layers": layers,
    }).encode()
    registry.put_manifest(repo, "v1", manifest, OCI_MANIFEST)
    with pytest.raises(LockError, match=r"notapp:v1: not a Spin application .*2 layers"):
        load_app(f"{registry.host}/{repo}:v1", cache_dir=tmp_path / "cache", insecure=True)
