"""OCI image-layout directories (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`), read and written.

Used for air-gapped hosts (`mirror` a registry app into a directory, copy it over, serve it) and for
the bundled offline demo. Tags are the `org.opencontainers.image.ref.name` annotation of index
entries, as oras, skopeo and crane write them.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from registry.atomic import atomic_file, atomic_write
from registry.digest import sha256_digest, split_digest, verify_bytes
from registry.errors import NotFoundError, RegistryError
from registry.media import OCI_INDEX, OCI_MANIFEST, REF_NAME_ANNOTATION
from registry.reference import DEFAULT_TAG

_CHUNK = 1 << 20
LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'


class LayoutRepo:
    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = path
        if create:
            (path / "blobs").mkdir(parents=True, exist_ok=True)
            if not (path / "oci-layout").exists():
                (path / "oci-layout").write_bytes(LAYOUT_VERSION)
            if not (path / "index.json").exists():
                self._write_index({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
        elif not (path / "index.json").is_file():
            raise NotFoundError(f"oci-layout:{path}: not an OCI image layout (no index.json)")

    def __str__(self) -> str:
        return f"oci-layout:{self.path}"

    # --- reading -----------------------------------------------------------------------------

    def _index(self) -> dict[str, Any]:
        try:
            obj = json.loads((self.path / "index.json").read_bytes())
        except (OSError, ValueError) as exc:
            raise RegistryError(f"{self}: cannot read index.json: {exc}") from exc
        if not isinstance(obj, dict) or not isinstance(obj.get("manifests"), list):
            raise RegistryError(f"{self}: index.json has no `manifests` list")
        return obj

    def tags(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for entry in self._index()["manifests"]:
            name = ((entry or {}).get("annotations") or {}).get(REF_NAME_ANNOTATION)
            if isinstance(name, str):
                # A ref name may be a whole reference ("example.com/app:v1"); its tag is the tail.
                out[name.rsplit(":", 1)[-1] if "/" in name else name] = entry
        return out

    def resolve(self, tag: str | None, digest: str | None) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of the manifest a tag or digest names."""
        if digest is not None:
            media_type = next(
                (str(e.get("mediaType", "")) for e in self._index()["manifests"] if e.get("digest") == digest),
                "",
            )
            return self.fetch_manifest(digest), media_type, digest
        entries = self._index()["manifests"]
        tags = self.tags()
        if tag is not None:
            entry = tags.get(tag)
            if entry is None:
                known = ", ".join(sorted(tags)) or "none"
                raise NotFoundError(f"{self}: no manifest tagged {tag!r} (tags: {known})")
        elif len(entries) == 1:
            entry = entries[0]
        elif DEFAULT_TAG in tags:
            entry = tags[DEFAULT_TAG]
        else:
            raise RegistryError(
                f"{self}: index.json holds {len(entries)} manifests; name one as "
                f"oci-layout:PATH:TAG (tags: {', '.join(sorted(tags)) or 'none'})"
            )
        found = str(entry.get("digest", ""))
        return self.fetch_manifest(found), str(entry.get("mediaType", "")), found

    def blob_path(self, digest: str) -> Path:
        algorithm, hex_ = split_digest(digest, str(self))
        return self.path / "blobs" / algorithm / hex_

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def fetch_manifest(self, digest: str) -> bytes:
        try:
            body = self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"{self}: manifest {digest} is missing from blobs/") from None
        verify_bytes(body, digest, f"{self}: manifest")
        return body

    @contextlib.contextmanager
    def open_blob(self, digest: str) -> Iterator[Iterator[bytes]]:
        try:
            f = self.blob_path(digest).open("rb")
        except FileNotFoundError:
            raise NotFoundError(f"{self}: blob {digest} is missing from blobs/") from None
        with f:
            yield iter(lambda: f.read(_CHUNK), b"")

    # --- writing -----------------------------------------------------------------------------

    def put_file(self, digest: str, source: Path) -> None:
        """Copy an already verified file in (temp + rename, so readers never see half a blob)."""
        final = self.blob_path(digest)
        if final.is_file():
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(final, mode=0o644) as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, _CHUNK)

    def put_bytes(self, digest: str, data: bytes) -> None:
        final = self.blob_path(digest)
        if final.is_file():
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        self._atomic_write(final, data)

    def put_manifest(self, tag: str | None, body: bytes, media_type: str) -> str:
        digest = sha256_digest(body)
        self.put_bytes(digest, body)
        if tag is not None:
            index = self._index()
            entry = {
                "mediaType": media_type or OCI_MANIFEST,
                "digest": digest,
                "size": len(body),
                "annotations": {REF_NAME_ANNOTATION: tag},
            }
            kept = [e for e in index["manifests"] if ((e or {}).get("annotations") or {}).get(REF_NAME_ANNOTATION) != tag]
            index["manifests"] = [*kept, entry]
            self._write_index(index)
        return digest

    def _write_index(self, index: dict[str, Any]) -> None:
        self._atomic_write(self.path / "index.json", json.dumps(index, indent=2).encode() + b"\n")

    def _atomic_write(self, path: Path, data: bytes) -> None:
        atomic_write(path, data, mode=0o644)
