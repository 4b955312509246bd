"""One interface over the two places apps live: a registry repository or an oci-layout dir."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from registry.digest import sha256_digest
from registry.layout import LayoutRepo
from registry.limits import DEFAULT_LIMITS, Deadline, RegistryLimits
from registry.reference import LayoutSource, Reference, parse_source
from registry.remote import RegistryClient


class Store(Protocol):
    label: str  # fully qualified, for messages and LoadedApp.reference

    def root_manifest(self) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of what the source's tag/digest names."""

    def manifest(self, digest: str, size: int | None = None) -> bytes:
        """The manifest by digest; `size` is what the descriptor pointing at it declares."""

    def open_blob(self, digest: str, size: int | None = None) -> AbstractContextManager[Iterator[bytes]]:
        """The blob's bytes; a store may stop reading just past `size`, the declared size."""

    def has_blob(self, digest: str) -> bool: ...

    def put_blob(self, digest: str, path: Path, progress: Callable[[int], None] | None) -> None: ...

    def put_manifest(self, body: bytes, media_type: str, tag: str | None) -> str: ...

    @property
    def tag(self) -> str | None: ...


class RemoteStore:
    def __init__(self, ref: Reference, insecure: bool, limits: RegistryLimits = DEFAULT_LIMITS,
                 deadline: Deadline | None = None) -> None:
        self.ref = ref
        self.client = RegistryClient(ref, insecure=insecure, limits=limits, deadline=deadline)
        self.label = str(ref)

    @property
    def tag(self) -> str | None:
        return self.ref.tag

    def root_manifest(self) -> tuple[bytes, str, str]:
        return self.client.fetch_manifest(self.ref.target)

    def manifest(self, digest: str, size: int | None = None) -> bytes:
        return self.client.fetch_manifest(digest, size)[0]

    def open_blob(self, digest: str, size: int | None = None) -> AbstractContextManager[Iterator[bytes]]:
        return self.client.open_blob(digest, size)

    def has_blob(self, digest: str) -> bool:
        return self.client.has_blob(digest)

    def put_blob(self, digest: str, path: Path, progress: Callable[[int], None] | None) -> None:
        self.client.upload_blob(digest, path, progress)

    def put_manifest(self, body: bytes, media_type: str, tag: str | None) -> str:
        # The registry's Docker-Content-Digest: callers check it against what they serialised.
        return self.client.put_manifest(tag or sha256_digest(body), body, media_type)


class LayoutStore:
    def __init__(self, source: LayoutSource, create: bool = False) -> None:
        self.source = source
        self.repo = LayoutRepo(source.path, create=create)
        absolute = LayoutSource(Path(os.path.abspath(source.path)), source.tag, source.digest)
        self.label = str(absolute)

    @property
    def tag(self) -> str | None:
        return self.source.tag

    def root_manifest(self) -> tuple[bytes, str, str]:
        return self.repo.resolve(self.source.tag, self.source.digest)

    def manifest(self, digest: str, size: int | None = None) -> bytes:
        return self.repo.fetch_manifest(digest)

    def open_blob(self, digest: str, size: int | None = None) -> AbstractContextManager[Iterator[bytes]]:
        # A local file: the digest check after the copy catches a wrong size.
        return self.repo.open_blob(digest)

    def has_blob(self, digest: str) -> bool:
        return self.repo.has_blob(digest)

    def put_blob(self, digest: str, path: Path, progress: Callable[[int], None] | None) -> None:
        self.repo.put_file(digest, path)
        if progress is not None:
            progress(path.stat().st_size)

    def put_manifest(self, body: bytes, media_type: str, tag: str | None) -> str:
        return self.repo.put_manifest(tag, body, media_type)


def open_store(
    source: str,
    *,
    insecure: bool,
    create: bool = False,
    limits: RegistryLimits = DEFAULT_LIMITS,
    deadline: Deadline | None = None,
) -> RemoteStore | LayoutStore:
    """`deadline`: shared by the stores of one operation (a mirror's source and target); by
    default each registry store starts its own."""
    parsed = parse_source(source)
    if isinstance(parsed, LayoutSource):
        return LayoutStore(parsed, create=create)
    return RemoteStore(parsed, insecure, limits, deadline)
