"""How long and how much a registry may take: per-request timeouts, one deadline per operation, and
size caps, so a registry that hangs, drips or lies about sizes costs a bounded amount of time and
disk. The caller (routes.toml `[server]`, CLI flags) chooses the values; these defaults are sane
for apps of tens of MB over the internet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from registry.errors import RegistryTimeoutError


@dataclass(frozen=True)
class RegistryLimits:
    connect_timeout_s: float = 10.0  # TCP (and TLS) connect
    # Longest silence within one response (headers or body). Registries stream blobs steadily, so
    # half a minute without a byte means the peer is gone or hostile.
    read_timeout_s: float = 30.0
    # A whole operation (one pull: manifests, token exchanges and every blob): a registry that
    # drips a byte now and then never trips the read timeout, this bounds it anyway.
    deadline_s: float = 300.0
    # Manifests are JSON listing a few descriptors; the distribution registry and containerd refuse
    # manifests over 4 MiB too.
    max_manifest_bytes: int = 4 * 1024 * 1024
    # A wasm component is tens of MB (a Python one ~40 MB); a file layer may be bigger, 1 GiB is not.
    max_blob_bytes: int = 1024 * 1024 * 1024


DEFAULT_LIMITS = RegistryLimits()


def describe_size(size: int) -> str:
    """A cap for messages: "4 MiB", "1 GiB", else bytes."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


class Deadline:
    """The time left for one registry operation, shared by the threads that pull its blobs."""

    def __init__(self, limits: RegistryLimits, label: str) -> None:
        self.limits = limits
        self.label = label
        self.at = time.monotonic() + limits.deadline_s

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def check(self, what: str) -> None:
        """Raise RegistryTimeoutError if the deadline has passed (checked before each request and
        between the reads of a body)."""
        if self.remaining() <= 0:
            raise RegistryTimeoutError(
                f"{self.label}: gave up on {what}: the whole pull took longer than "
                f"{self.limits.deadline_s:g}s (registry_deadline)"
            )

    def timeouts(self) -> tuple[float, float]:
        """(connect, read) timeouts for the next request: the configured ones, never past the
        deadline. Each read can wait at most this long, so an operation ends at the latest one
        read timeout after its deadline."""
        left = max(self.remaining(), 0.001)
        return min(self.limits.connect_timeout_s, left), min(self.limits.read_timeout_s, left)
