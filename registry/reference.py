"""Parsing app sources: OCI references (docker-style defaults) and `oci-layout:PATH[:TAG]`.

Pure functions; no I/O. The grammar follows distribution/reference (what Spin's oci-distribution
`Reference` implements): a first path component with a `.` or `:` (or `localhost`) is a registry,
otherwise the registry is docker.io; docker.io single-name repositories get `library/`; no tag and
no digest means `latest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from registry.errors import InvalidReferenceError

DOCKER_HUB = "docker.io"
# Docker Hub's API endpoint and the key logins are stored under (Spin >= 2.6 writes index.docker.io).
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_AUTH_KEY = "index.docker.io"
DEFAULT_TAG = "latest"
LAYOUT_PREFIX = "oci-layout:"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$"
)
TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")


@dataclass(frozen=True)
class Reference:
    """A fully resolved OCI reference."""

    registry: str  # as written, with docker.io defaulting; e.g. "ghcr.io", "127.0.0.1:5000"
    repository: str  # e.g. "library/hello"
    tag: str | None  # None only for digest-only references
    digest: str | None  # "sha256:<hex>" when pinned

    @property
    def api_host(self) -> str:
        """Host (and port) the distribution API lives on."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def auth_key(self) -> str:
        """Key under which credentials are looked up (Spin's `resolve_registry`)."""
        return DOCKER_HUB_AUTH_KEY if self.registry == DOCKER_HUB else self.registry

    @property
    def target(self) -> str:
        """What goes after /manifests/: the digest if pinned (immutable), else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}{_tag_and_digest(self.tag, self.digest)}"


@dataclass(frozen=True)
class LayoutSource:
    """An OCI image-layout directory plus the tag or digest to pick from its index.json."""

    path: Path
    tag: str | None
    digest: str | None

    def __str__(self) -> str:
        return f"{LAYOUT_PREFIX}{self.path}{_tag_and_digest(self.tag, self.digest)}"


def _tag_and_digest(tag: str | None, digest: str | None) -> str:
    """The `[:TAG][@DIGEST]` tail both source kinds print, as they are parsed."""
    return (f":{tag}" if tag is not None else "") + (f"@{digest}" if digest is not None else "")


def parse_reference(text: str) -> Reference:
    """Parse `[REGISTRY/]REPO[:TAG][@DIGEST]` with docker defaults."""
    original = text
    if not text or text != text.strip():
        raise InvalidReferenceError(f"invalid OCI reference {original!r}: empty or surrounded by whitespace")
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not DIGEST_RE.match(digest):
            raise InvalidReferenceError(f"invalid OCI reference {original!r}: bad digest {digest!r}")
    tag = None
    last = text.rsplit("/", 1)[-1]
    if ":" in last:
        text, tag = text.rsplit(":", 1)
        if not TAG_RE.match(tag):
            raise InvalidReferenceError(f"invalid OCI reference {original!r}: bad tag {tag!r}")
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        registry, repository = first, rest
        if not _DOMAIN_RE.match(registry):
            raise InvalidReferenceError(f"invalid OCI reference {original!r}: bad registry {registry!r}")
    else:
        registry, repository = DOCKER_HUB, text
    if registry == "index.docker.io":
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if not _REPOSITORY_RE.match(repository):
        raise InvalidReferenceError(
            f"invalid OCI reference {original!r}: repository {repository!r} must be lowercase "
            "path components of [a-z0-9] separated by '.', '_', '__' or '-'"
        )
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry=registry, repository=repository, tag=tag, digest=digest)


def parse_layout(text: str) -> LayoutSource:
    """Parse `oci-layout:PATH[:TAG][@DIGEST]`. A trailing `:x` is a tag only if it contains no `/`."""
    if not text.startswith(LAYOUT_PREFIX):
        raise InvalidReferenceError(f"{text!r} is not an oci-layout source (expected {LAYOUT_PREFIX}PATH[:TAG])")
    rest = text[len(LAYOUT_PREFIX) :]
    digest = None
    if "@" in rest:
        rest, digest = rest.rsplit("@", 1)
        if not DIGEST_RE.match(digest):
            raise InvalidReferenceError(f"invalid oci-layout source {text!r}: bad digest {digest!r}")
    tag = None
    head, sep, tail = rest.rpartition(":")
    if sep and head and "/" not in tail and TAG_RE.match(tail):
        rest, tag = head, tail
    if not rest:
        raise InvalidReferenceError(f"invalid oci-layout source {text!r}: no path")
    return LayoutSource(path=Path(rest), tag=tag, digest=digest)


def parse_source(text: str) -> Reference | LayoutSource:
    return parse_layout(text) if text.startswith(LAYOUT_PREFIX) else parse_reference(text)
