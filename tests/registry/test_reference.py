"""Pure parsing and encoding rules (no registry needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from registry import InvalidReferenceError, UnsafePathError
from registry.locked import LockedApp
from registry.media import canonical_json, spin_image_config
from registry.paths import safe_relative_path
from registry.push import rfc3339_now, spin_annotations
from registry.reference import parse_layout, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("hello", "docker.io", "library/hello", "latest", None),
        ("acme/hello:v1", "docker.io", "acme/hello", "v1", None),
        ("index.docker.io/acme/hello", "docker.io", "acme/hello", "latest", None),
        ("ghcr.io/acme/app/web:1.2.3", "ghcr.io", "acme/app/web", "1.2.3", None),
        ("127.0.0.1:5000/demo/hello:v1", "127.0.0.1:5000", "demo/hello", "v1", None),
        ("localhost/hello", "localhost", "hello", "latest", None),
        (f"ghcr.io/acme/hello@{DIGEST}", "ghcr.io", "acme/hello", None, DIGEST),
        (f"ghcr.io/acme/hello:v1@{DIGEST}", "ghcr.io", "acme/hello", "v1", DIGEST),
    ],
)
def test_reference_defaults(text: str, registry: str, repository: str, tag: str | None, digest: str | None) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert ref.target == (digest or tag)


def test_docker_hub_endpoints() -> None:
    ref = parse_reference("hello")
    assert (ref.api_host, ref.auth_key, str(ref)) == ("registry-1.docker.io", "index.docker.io", "docker.io/library/hello:latest")


@pytest.mark.parametrize("text", ["", "Hello/World", "ghcr.io/a/b:", "ghcr.io/a/b@sha256:xyz", "a//b", " x"])
def test_bad_references_are_refused(text: str) -> None:
    with pytest.raises(InvalidReferenceError, match="invalid OCI reference"):
        parse_reference(text)


def test_layout_sources() -> None:
    assert parse_layout("oci-layout:examples/hello:v1").path == Path("examples/hello")
    assert parse_layout("oci-layout:examples/hello:v1").tag == "v1"
    assert parse_layout("oci-layout:/srv/apps").tag is None
    assert parse_layout(f"oci-layout:/srv/apps@{DIGEST}").digest == DIGEST
    assert parse_layout("oci-layout:/srv/a:b/c").path == Path("/srv/a:b/c")  # ':' in a dir name
    with pytest.raises(InvalidReferenceError):
        parse_layout("oci-layout:")


@pytest.mark.parametrize("path", ["../x", "/abs", "a/../../x", "", ".", "a\x00b"])
def test_unsafe_paths(path: str) -> None:
    with pytest.raises(UnsafePathError):
        safe_relative_path(path, "test")


def test_safe_paths_are_normalised() -> None:
    assert str(safe_relative_path("./static//app.js", "t")) == "static/app.js"


def test_canonical_json_matches_olpc() -> None:
    assert canonical_json({"b": [1, {"z": "q\"\\"}], "a": "é\n"}) == '{"a":"é\n","b":[1,{"z":"q\\"\\\\"}]}'.encode()


def test_image_config_matches_spin_size_and_digest() -> None:
    # Size and digest of the config for a known lock (docs/reference/spin-compat.md, Example image config).
    config = spin_image_config("sha256:5651635fb46376c3942354027f213957dafe20ccddb091b1b29452990cedaf91")
    import hashlib

    assert len(config) == 209
    assert hashlib.sha256(config).hexdigest() == "434326036f61fc6f6b0e540c66d41255d4694af0efded128f38dead72d9d9dcf"


def test_annotations_like_spin() -> None:
    lock = LockedApp.from_json(
        {"spin_lock_version": 0, "metadata": {"name": "n", "version": "1", "authors": ["A", "B"]},
         "triggers": [], "components": []}
    )
    out = spin_annotations(lock, {"org.opencontainers.image.title": "explicit"})
    assert out["org.opencontainers.image.title"] == "explicit"
    assert out["org.opencontainers.image.authors"] == "A, B"
    assert out["org.opencontainers.image.version"] == "1"
    assert "org.opencontainers.image.description" not in out
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?\+00:00", rfc3339_now())
