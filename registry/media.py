"""OCI / Spin media types, manifest parsing, and the JSON encodings Spin's pushes use."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from registry.errors import RegistryError

# Spin's artifact (spinframework/spin crates/oci/src/client.rs).
SPIN_APPLICATION = "application/vnd.fermyon.spin.application.v1+config"
WASM_LAYER = "application/vnd.wasm.content.layer.v1+wasm"
WASM_LAYER_WKG = "application/wasm"
DATA_LAYER = "application/vnd.wasm.content.layer.v1+data"
ARCHIVE_LAYER = "application/vnd.wasm.content.bundle.v1.tar+gzip"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})

LOCKED_APP_DIGEST_LABEL = "com.fermyon.spin.lockedAppDigest"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Mapping[str, Any] | None = None
    annotations: Mapping[str, str] | None = None

    @classmethod
    def from_json(cls, obj: Any, where: str) -> Descriptor:
        if not isinstance(obj, dict):
            raise RegistryError(f"{where}: descriptor is not an object")
        media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
        if not isinstance(digest, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise RegistryError(f"{where}: descriptor needs a string digest and a non-negative size")
        platform = obj.get("platform") if isinstance(obj.get("platform"), dict) else None
        annotations = obj.get("annotations") if isinstance(obj.get("annotations"), dict) else None
        return cls(str(media_type or ""), digest, size, platform, annotations)


@dataclass(frozen=True)
class ImageManifest:
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class ImageIndex:
    manifests: tuple[Descriptor, ...]


def parse_manifest(body: bytes, media_type: str, where: str) -> ImageManifest | ImageIndex:
    """Parse manifest bytes; the JSON's own mediaType wins over the transport's, and Spin's
    manifests have none at all, so absence of `manifests` means an image manifest."""
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RegistryError(f"{where}: manifest is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise RegistryError(f"{where}: manifest is not a JSON object")
    declared = obj.get("mediaType") or media_type
    if declared in INDEX_TYPES or ("manifests" in obj and "layers" not in obj):
        entries = obj.get("manifests")
        if not isinstance(entries, list):
            raise RegistryError(f"{where}: image index has no `manifests` list")
        return ImageIndex(tuple(Descriptor.from_json(m, f"{where}.manifests[{i}]") for i, m in enumerate(entries)))
    if obj.get("schemaVersion") != 2:
        raise RegistryError(f"{where}: unsupported manifest schemaVersion {obj.get('schemaVersion')!r}")
    layers = obj.get("layers")
    if not isinstance(layers, list):
        raise RegistryError(f"{where}: manifest has no `layers` list")
    return ImageManifest(
        config=Descriptor.from_json(obj.get("config"), f"{where}.config"),
        layers=tuple(Descriptor.from_json(layer, f"{where}.layers[{i}]") for i, layer in enumerate(layers)),
    )


def choose_platform(index: ImageIndex, where: str) -> Descriptor:
    """The wasm/wasip1 (or wasi) entry of an index, or its only entry."""
    for entry in index.manifests:
        platform = entry.platform or {}
        if platform.get("architecture") == "wasm" and platform.get("os") in ("wasip1", "wasip2", "wasi"):
            return entry
    if len(index.manifests) == 1:
        return index.manifests[0]
    found = ", ".join(
        f"{(e.platform or {}).get('os', '?')}/{(e.platform or {}).get('architecture', '?')}" for e in index.manifests
    )
    raise RegistryError(f"{where}: image index has no wasm/wasip1 manifest (platforms: {found or 'none'})")


def _canonical_string(text: str) -> str:
    # OLPC canonical JSON (olpc-cjson, used by oci-distribution to serialise manifests) escapes
    # only backslash and double quote; every other character is written as raw UTF-8.
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def canonical_json(value: Any) -> bytes:
    """Serialise like oci-distribution's `CanonicalFormatter`: sorted keys, no whitespace."""

    def encode(v: Any) -> str:
        if isinstance(v, Mapping):
            return "{" + ",".join(f"{_canonical_string(k)}:{encode(v[k])}" for k in sorted(v)) + "}"
        if isinstance(v, list | tuple):
            return "[" + ",".join(encode(x) for x in v) + "]"
        if isinstance(v, str):
            return _canonical_string(v)
        if isinstance(v, bool) or v is None:
            return json.dumps(v)
        if isinstance(v, int):
            return str(v)
        raise TypeError(f"canonical JSON cannot encode {type(v).__name__}")

    return encode(value).encode("utf-8")


def spin_image_config(lock_digest: str) -> bytes:
    """The OCI image config Spin >= 2 pushes, byte for byte (serde field order, compact)."""
    return (
        '{"architecture":"wasm","os":"wasip1","config":{"Labels":{"'
        + LOCKED_APP_DIGEST_LABEL
        + '":"'
        + lock_digest
        + '"}},"rootfs":{"type":"layers","diff_ids":[]}}'
    ).encode()
