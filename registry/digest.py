"""Content digests: parsing, hashing, and streaming verification."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from registry.errors import DigestMismatchError, RegistryError

_ALGORITHMS = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^(sha256|sha512):([0-9a-f]+)$")


def split_digest(digest: str, where: str = "") -> tuple[str, str]:
    """("sha256", "<hex>") for a supported, well-formed digest; anything else is refused."""
    match = _DIGEST_RE.match(digest)
    if not match or len(match.group(2)) != _ALGORITHMS[match.group(1)]:
        prefix = f"{where}: " if where else ""
        raise RegistryError(f"{prefix}unsupported or malformed digest {digest!r}")
    return match.group(1), match.group(2)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class DigestVerifier:
    """Hashes bytes as they stream past, then checks size and digest in one place."""

    def __init__(self, digest: str, expected_size: int | None, where: str) -> None:
        self.digest = digest
        self.expected_size = expected_size
        self.where = where
        algorithm, self._hex = split_digest(digest, where)
        self._hash: Any = hashlib.new(algorithm)
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)
        if self.expected_size is not None and self.size > self.expected_size:
            raise DigestMismatchError(
                f"{self.where}: blob {self.digest} is larger than the {self.expected_size} bytes "
                "its descriptor declares"
            )

    def check(self) -> None:
        if self.expected_size is not None and self.size != self.expected_size:
            raise DigestMismatchError(
                f"{self.where}: blob {self.digest} is truncated: got {self.size} of "
                f"{self.expected_size} bytes"
            )
        actual = self._hash.hexdigest()
        if actual != self._hex:
            raise DigestMismatchError(
                f"{self.where}: blob {self.digest} failed verification: its content hashes to "
                f"{self.digest.split(':', 1)[0]}:{actual}"
            )


def verify_bytes(data: bytes, digest: str, where: str, expected_size: int | None = None) -> None:
    verifier = DigestVerifier(digest, expected_size, where)
    verifier.update(data)
    verifier.check()
