"""A registry that accepts connections and never answers, or drips, costs bounded time (issue 11,
item 2), and a timeout falls back to the cached tag as a refused connection does. Against peers on
loopback: a TCP listener that never answers, a scripted HTTP peer, and the real docker-registry.

Each attack runs on a daemon thread with a bound, so that old code (which waited minutes, or for
ever) fails the test instead of hanging it."""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from registry import RegistryLimits, RegistryTimeoutError, UnreachableError, load_app, push_app
from registry.media import OCI_CONFIG, WASM_LAYER
from tests.support.hostile_registry import (
    Body,
    HangingListener,
    LyingRegistry,
    descriptor,
    endless,
    manifest_json,
)
from tests.support.registry_apps import AppComponent, sized_module, write_local_app
from tests.support.registry_server import RegistryServer
from tests.support.server import free_port

FAST = RegistryLimits(connect_timeout_s=1.0, read_timeout_s=1.0, deadline_s=10.0)
BOUND_S = 20.0  # a test thread still running after this is a hang


def run_bounded(fn: Callable[[], Any], bound_s: float = BOUND_S) -> tuple[Any, BaseException | None, float]:
    """(result, exception, seconds) of fn() on a daemon thread; fails the test if it outlives bound_s."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["result"] = fn()
        except BaseException as exc:
            out["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(bound_s)
    elapsed = time.monotonic() - started
    if thread.is_alive():
        pytest.fail(f"still waiting on the registry after {bound_s:.0f}s")
    return out.get("result"), out.get("error"), elapsed


@pytest.fixture
def hanging() -> Iterator[HangingListener]:
    with HangingListener() as listener:
        yield listener


@pytest.fixture
def neighbour(registry: RegistryServer, tmp_path: Path) -> str:
    lock = write_local_app(tmp_path / "neighbour", [AppComponent("web", sized_module(500, "neighbour-t"))])
    ref = f"{registry.host}/timeouts/neighbour:v1"
    push_app(lock, ref, insecure=True)
    return ref


def test_registry_that_never_answers_fails_within_the_read_timeout(
    hanging: HangingListener, neighbour: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    _, error, elapsed = run_bounded(lambda: load_app(f"{hanging.host}/hung/app:v1", cache_dir=cache,
                                                     insecure=True, limits=FAST))
    assert isinstance(error, RegistryTimeoutError), error
    assert isinstance(error, UnreachableError)  # the offline case, for the cache fallback
    assert f"hung/app:v1: registry {hanging.host} accepted the connection but did not answer within 1s" in str(error)
    assert "registry_read_timeout" in str(error)
    assert elapsed < 5, elapsed
    assert hanging.accepted, "the client never connected"
    assert load_app(neighbour, cache_dir=cache, insecure=True).components["web"].wasm_path.is_file()


def test_timeout_falls_back_to_the_cached_tag(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lock = write_local_app(tmp_path / "app", [AppComponent("web", sized_module(500, "fallback"))])
    cache = tmp_path / "cache"
    server = RegistryServer(tmp_path / "reg").start()
    try:
        ref = f"{server.host}/fallback/app:v1"
        digest = push_app(lock, ref, insecure=True)
        assert load_app(ref, cache_dir=cache, insecure=True).manifest_digest == digest
    finally:
        server.stop()
    # Same host:port, now a peer that accepts and never answers (the cache is keyed by host).
    with HangingListener(port=server.port), caplog.at_level(logging.WARNING, logger="lepton.registry"):
        loaded, error, elapsed = run_bounded(lambda: load_app(ref, cache_dir=cache, insecure=True, limits=FAST))
    assert error is None, error
    assert loaded.manifest_digest == digest
    assert elapsed < 5, elapsed
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("unreachable" in w and "did not answer within 1s" in w and digest in w for w in warnings), warnings


def test_dripping_registry_is_stopped_by_the_deadline(neighbour: str, tmp_path: Path) -> None:
    """A byte now and then never trips the read timeout; the deadline of the pull stops it."""
    config = b'{"architecture":"wasm","os":"wasip1"}'
    layer = b"\xab" * (8 * 1024 * 1024)
    with LyingRegistry() as peer:
        peer.blobs["sha256:" + hashlib.sha256(config).hexdigest()] = Body(config)
        # 1 KiB every 50 ms: 8 MiB would take 7 minutes.
        peer.blobs["sha256:" + hashlib.sha256(layer).hexdigest()] = Body(endless(len(layer), 1024, 0.05))
        peer.manifests["v1"] = Body(manifest_json(descriptor(config, OCI_CONFIG), [descriptor(layer, WASM_LAYER)]))
        limits = RegistryLimits(connect_timeout_s=1.0, read_timeout_s=5.0, deadline_s=2.0)
        cache = tmp_path / "cache"
        _, error, elapsed = run_bounded(lambda: load_app(f"{peer.host}/drip/app:v1", cache_dir=cache,
                                                         insecure=True, limits=limits))
    assert isinstance(error, RegistryTimeoutError), error
    assert "drip/app:v1: gave up on blob sha256:" in str(error) and "longer than 2s (registry_deadline)" in str(error)
    assert elapsed < 2 + 5, elapsed  # the deadline, plus at most one read timeout
    assert list((cache / "tmp").iterdir()) == []
    assert load_app(neighbour, cache_dir=cache, insecure=True).components["web"].wasm_path.is_file()


def test_token_service_that_never_answers(hanging: HangingListener, neighbour: str, tmp_path: Path) -> None:
    """oras' token exchange sends its request without a timeout; ours gets one."""
    with LyingRegistry(bearer_realm=f"http://{hanging.host}/token") as peer:
        cache = tmp_path / "cache"
        _, error, elapsed = run_bounded(lambda: load_app(f"{peer.host}/token/app:v1", cache_dir=cache,
                                                         insecure=True, limits=FAST))
    assert isinstance(error, RegistryTimeoutError), error
    assert f"the token service http://{hanging.host}/token did not answer in time" in str(error)
    assert elapsed < 5, elapsed
    assert load_app(neighbour, cache_dir=cache, insecure=True).components["web"].wasm_path.is_file()


def test_connect_timeout(neighbour: str, tmp_path: Path) -> None:
    """A listener whose accept queue is full drops new SYNs: connect() waits (loopback only)."""
    port = free_port()
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen(0)
    fillers: list[socket.socket] = []
    try:
        # Fill the accept queue (never accepted) until a connect no longer completes at once.
        for _ in range(8):
            filler = socket.socket()
            filler.settimeout(0.3)
            try:
                filler.connect(("127.0.0.1", port))
            except OSError:
                filler.close()
                break
            fillers.append(filler)
        else:
            pytest.skip("this kernel keeps completing connections to a full accept queue")
        cache = tmp_path / "cache"
        _, error, elapsed = run_bounded(lambda: load_app(f"127.0.0.1:{port}/full/app:v1", cache_dir=cache,
                                                         insecure=True, limits=FAST))
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert isinstance(error, RegistryTimeoutError), error
    assert "cannot reach registry" in str(error) and "no connection within 1s (registry_connect_timeout)" in str(error)
    assert elapsed < 5, elapsed
    assert load_app(neighbour, cache_dir=cache, insecure=True).components["web"].wasm_path.is_file()
