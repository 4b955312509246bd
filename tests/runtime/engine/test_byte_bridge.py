"""runtime/byte_bridge: guests' stream bytes cross to the host as latin-1 strings, unchanged.

Every fixture toolchain's component is bridged when compiled, every byte value survives both
directions at sizes around the allocator's and the 4 KiB write limit's edges, and what cannot be
bridged compiles as it is.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import wasmtime
from wasmtime.component import Component

from runtime import Runtime
from runtime.core.context import RequestContext, bind
from runtime.engine import byte_bridge, instance_pool
from runtime.engine.precompiled import CompiledCache
from runtime.testing import component, loaded_app
from runtime.types import AppSettings, MiB
from tests.support import fixtures
from tests.support.runtime_helpers import GUEST_WAT, HELLO_WAT, read, request

SETTINGS = AppSettings(timeout_s=10.0, memory_bytes=128 * MiB, max_body_bytes=8 * MiB)
BRIDGED_IMPORT = byte_bridge.LATIN1_IMPORT
ALL_BYTES = bytes(range(256))


def _wat_guest() -> Path:
    return GUEST_WAT


FIXTURES: dict[str, Callable[[], Path]] = {
    "wat": _wat_guest,
    "c": fixtures.build_c_http_hello,
    "python": fixtures.build_python_echo,
    "js": fixtures.build_js_echo,
}


@pytest.fixture(scope="module")
def rt() -> Iterator[Runtime]:
    runtime = Runtime(fixtures.cache_root() / "runtime")
    yield runtime
    runtime.close()


def _wasm_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return bytes(wasmtime.wat2wasm(data.decode())) if path.suffix == ".wat" else data


def _names(component: Component, engine: wasmtime.Engine) -> tuple[set[str], set[str]]:
    return set(component.type.imports(engine)), set(component.type.exports(engine))


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_every_fixture_toolchain_is_bridged_with_its_exports_kept(name: str) -> None:
    engine = wasmtime.Engine()
    guest = _wasm_bytes(FIXTURES[name]())
    bridged = byte_bridge.bridge(engine, guest)
    assert bridged is not None
    original_imports, original_exports = _names(Component(engine, guest), engine)
    imports, exports = _names(Component(engine, bridged), engine)
    assert exports == original_exports
    assert imports == original_imports | {BRIDGED_IMPORT}


SIZES = [1, 255, 4095, 4096, 4097, 65535, 65537, MiB + 3]


ECHOES = [("wat", "/echo", []), ("c", "/echo", []), ("python", "/raw", [("x-echo", "raw")])]


@pytest.mark.parametrize("name,path,headers", ECHOES)
async def test_every_byte_value_survives_the_round_trip(rt: Runtime, name: str, path: str, headers: list[tuple[str, str]]) -> None:
    running = await rt.load_app(loaded_app([component("c", FIXTURES[name]())], name=name), SETTINGS)
    guest = running.slots["c"].guest
    assert BRIDGED_IMPORT in guest.link_report.provided, "the guest was not bridged"
    for size in SIZES:
        data = (ALL_BYTES * (size // 256 + 1))[:size]
        resp = await running.handle(request(path, body=data, headers=headers))
        assert resp.status == 200
        assert await read(resp) == data, f"{name}: {size} bytes"


async def test_a_failed_body_reaches_the_guest_as_a_stream_error(rt: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    # last-operation-failed carries an own<error> handle from the host through the bridge.
    running = await rt.load_app(loaded_app([component("c", GUEST_WAT)], name="broken"), SETTINGS)
    assert BRIDGED_IMPORT in running.slots["c"].guest.link_report.provided

    async def breaks_off() -> AsyncIterator[bytes]:
        yield ALL_BYTES * 100
        raise ConnectionError("client went away")

    with caplog.at_level(logging.ERROR):
        resp = await running.handle(request("/echo", chunks=breaks_off()))
        body = await read(resp)
    assert resp.status == 200
    assert body == ALL_BYTES * 100  # the echo ends at the error, without a trap
    assert "trap" not in caplog.text


async def test_js_text_body_through_the_bridge(rt: Runtime) -> None:
    running = await rt.load_app(loaded_app([component("c", FIXTURES["js"]())], name="js"), SETTINGS)
    assert BRIDGED_IMPORT in running.slots["c"].guest.link_report.provided
    text = "héllo wörld ✓ " * 5000  # multi-byte UTF-8 across chunk edges
    resp = await running.handle(request("/js/x", body=text.encode()))
    assert resp.status == 200
    assert json.loads(await read(resp))["body"] == text


async def test_the_blocking_write_limit_still_traps_through_the_bridge(rt: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    running = await rt.load_app(loaded_app([component("c", GUEST_WAT)], name="over"), SETTINGS)
    with caplog.at_level(logging.ERROR):
        resp = await running.handle(request("/over"))
    assert resp.status == 500
    assert "Buffer too large for blocking-write-and-flush (expected at most 4096)" in caplog.text


def test_what_cannot_be_bridged_is_left_alone() -> None:
    engine = wasmtime.Engine()
    no_imports = bytes(wasmtime.wat2wasm("(component)"))
    func_import = bytes(wasmtime.wat2wasm('(component (import "f" (func)))'))
    core_module = bytes(wasmtime.wat2wasm("(module)"))
    for wasm in (no_imports, func_import, core_module, b"", b"\x00asm\x0d\x00\x01\x00\x07\xff"):
        assert byte_bridge.bridge(engine, wasm) is None


def test_names_that_could_change_the_outer_text_are_refused() -> None:
    engine = wasmtime.Engine()
    guest = _wasm_bytes(GUEST_WAT)
    assert byte_bridge.bridge(engine, guest) is not None
    export = b"wasi:http/incoming-handler@0.2.0"
    assert guest.count(export) >= 1
    # The same length, so the binary stays well formed; the guest's own export now has a quote.
    assert byte_bridge.bridge(engine, guest.replace(export, b'wasi:http/incoming-handler@0.2"0')) is None


def test_a_write_only_guest_gets_a_write_only_bridge() -> None:
    engine = wasmtime.Engine()
    hello = _wasm_bytes(HELLO_WAT)  # imports output-stream only: no input-stream to name
    bridged = byte_bridge.bridge(engine, hello)
    assert bridged is not None
    exports = _names(Component(engine, bridged), engine)[1]
    assert exports == _names(Component(engine, hello), engine)[1]
    latin1 = Component(engine, bridged).type.imports(engine)[BRIDGED_IMPORT].ty
    assert set(latin1.exports(engine)) == {"stream-error", "output-stream", "write", "blocking-write-and-flush"}


async def test_a_write_only_guest_still_answers(rt: Runtime) -> None:
    running = await rt.load_app(loaded_app([component("c", HELLO_WAT)], name="hello"), SETTINGS)
    resp = await running.handle(request("/"))
    assert resp.status == 200
    assert await read(resp)


@pytest.fixture
def guest_wasm(tmp_path: Path) -> Path:
    """The WAT guest as a binary file, as the cache reads components."""
    wasm = tmp_path / "guest.wasm"
    wasm.write_bytes(_wasm_bytes(GUEST_WAT))
    return wasm


def test_cache_compiles_bridged_and_keys_the_bridge(
    tmp_path: Path, guest_wasm: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine = wasmtime.Engine()
    wasm = guest_wasm
    digest = "sha256:" + "ab" * 32
    cache = CompiledCache(engine, tmp_path / "on")
    with caplog.at_level(logging.INFO, logger="lepton.runtime"):
        compiled = cache.load(wasm, digest)
    assert "guest.wasm (sha256:abababababab, byte bridge) in" in caplog.text
    assert isinstance(compiled, Component)
    assert BRIDGED_IMPORT in _names(compiled, engine)[0]
    assert f"bridge{byte_bridge.BRIDGE_VERSION}" in cache.path_for(digest, "component").name

    monkeypatch.setenv(byte_bridge.BRIDGE_ENV, "0")
    plain = CompiledCache(engine, tmp_path / "off")
    compiled = plain.load(wasm, digest)
    assert isinstance(compiled, Component)
    assert BRIDGED_IMPORT not in _names(compiled, engine)[0]
    assert "bridge" not in plain.path_for(digest, "component").name


def test_a_bridge_wasmtime_refuses_falls_back_to_the_guest(
    tmp_path: Path, guest_wasm: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine = wasmtime.Engine()
    wasm = guest_wasm
    monkeypatch.setattr(byte_bridge, "bridge", lambda engine, guest: guest[:-1])  # truncated output
    with caplog.at_level(logging.WARNING):
        compiled = CompiledCache(engine, tmp_path / "cache").load(wasm, "sha256:" + "cd" * 32)
    assert isinstance(compiled, Component)
    assert BRIDGED_IMPORT not in _names(compiled, engine)[0]
    assert "byte bridge refused" in caplog.text


async def test_bridged_sdk_instances_fill_the_pool_to_its_instance_bound() -> None:
    # The bridge adds a memory and two core instances to every component: the pool's memory and
    # core-instance totals must still outlast its component-instance bound, so that bound (not
    # an exhausted memory pool) is what refuses the instance past it.
    workers = 2
    runtime = Runtime(fixtures.cache_root() / "runtime", workers=workers)
    try:
        running = await runtime.load_app(loaded_app([component("c", FIXTURES["python"]())], name="py"), SETTINGS)
        guest = running.slots["c"].guest
        assert BRIDGED_IMPORT in guest.link_report.provided
        bound = instance_pool.PoolLimits.for_concurrency(workers).component_instances
        stores, contexts = [], []
        try:
            for _ in range(bound):
                ctx = RequestContext(guest.app, guest.component, guest.settings, time.monotonic() + 30, guest.log)
                with bind(ctx):
                    store = guest.new_store(ctx)
                    guest.instantiate(store)
                stores.append(store)
                contexts.append(ctx)
            ctx = RequestContext(guest.app, guest.component, guest.settings, time.monotonic() + 30, guest.log)
            contexts.append(ctx)
            with bind(ctx), pytest.raises(wasmtime.WasmtimeError, match=r"concurrent limit of \d+ for component instances"):
                guest.instantiate(guest.new_store(ctx))
        finally:
            for store in stores:
                store.close()
            for ctx in contexts:
                ctx.close()
    finally:
        runtime.close()
