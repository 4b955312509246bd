"""Apps running the same compiled component share its Linker (runtime/core/shared.py) and nothing
else: each app's variables, key-value data and allowed outbound hosts stay its own, even when the
apps' requests run at the same time; the shared entry goes away with the last app using it."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.locked import Variable
from runtime import Runtime
from runtime.core.shared import SharedCodeCache
from runtime.http.app import RunningApp
from runtime.runtime import default_capabilities
from runtime.testing import component, loaded_app
from runtime.types import AppSettings, MiB
from tests.support.fixtures import FIXTURES_DIR, build_python_app, cache_root
from tests.support.runtime_helpers import GUEST_WAT, HELLO_WAT, read, request
from tests.support.upstream import Upstream


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime(tmp_path / "cache")
    yield runtime
    runtime.close()


def wat_app(tmp_path: Path, wat: Path, name: str) -> object:
    import wasmtime

    wasm = tmp_path / f"{wat.stem}.wasm"
    if not wasm.exists():
        wasm.write_bytes(wasmtime.wat2wasm(wat.read_text()))
    return loaded_app(component("c", wasm), name=name)


def settings(state_dir: Path, **variables: str) -> AppSettings:
    return AppSettings(timeout_s=20.0, memory_bytes=256 * MiB, variables=variables, state_dir=state_dir)


async def get(running: RunningApp, path: str, **kwargs: object) -> tuple[int, bytes]:
    resp = await running.handle(request(path, **kwargs))  # type: ignore[arg-type]
    return resp.status, await read(resp)


def guest(running: RunningApp) -> object:
    return running.slots["c"].guest


async def test_apps_of_one_component_share_one_linker_and_it_goes_with_the_last(rt: Runtime, tmp_path: Path) -> None:
    apps = [await rt.load_app(wat_app(tmp_path, HELLO_WAT, f"hello{i}"), settings(tmp_path / f"s{i}"))  # type: ignore[arg-type]
            for i in range(3)]
    neighbour = await rt.load_app(wat_app(tmp_path, GUEST_WAT, "guest"), settings(tmp_path / "g"))  # type: ignore[arg-type]
    linkers = {id(guest(a).linker) for a in apps}  # type: ignore[attr-defined]
    assert len(linkers) == 1 and guest(apps[0]).linker is not None  # type: ignore[attr-defined]
    assert guest(neighbour).linker is not guest(apps[0]).linker  # type: ignore[attr-defined]
    assert rt.shared.stats == {"built": 2, "shared": 2} and len(rt.shared) == 2
    for running in apps:
        assert await get(running, "/") == (200, b"Hello, Fermyon!\n")

    # Removing the apps (as a retired version is closed and dropped) frees the shared linker and
    # the compiled component; the neighbour's entry stays and it keeps serving.
    linker = weakref.ref(guest(apps[0]).linker)  # type: ignore[attr-defined]
    for running in apps:
        running.close()
    del apps, running
    # A worker thread may still be ending the last request's run (its cleanups hold the guest
    # for a moment): the entry must go soon, not necessarily at once.
    deadline = time.monotonic() + 10
    while gc.collect() is not None and linker() is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert linker() is None
    assert len(rt.shared) == 1
    status, _ = await get(neighbour, "/echo", method="POST", body=b"still here")
    assert status == 200

    # The next app of that digest links again (a fresh entry), and serves.
    again = await rt.load_app(wat_app(tmp_path, HELLO_WAT, "hello-again"), settings(tmp_path / "s"))  # type: ignore[arg-type]
    assert rt.shared.stats["built"] == 3
    assert await get(again, "/") == (200, b"Hello, Fermyon!\n")


def test_the_cache_is_per_capability_list(rt: Runtime, tmp_path: Path) -> None:
    import wasmtime

    wasm = tmp_path / "hello.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(HELLO_WAT.read_text()))
    compiled = rt.cache.load(wasm, "sha256:" + "1" * 64)
    other = SharedCodeCache(rt.engine, default_capabilities())
    assert rt.shared.get(compiled) is rt.shared.get(compiled)
    assert other.get(compiled).linker is not rt.shared.get(compiled).linker


def test_trial_instantiation_is_not_skipped_for_tighter_limits(rt: Runtime, tmp_path: Path) -> None:
    import wasmtime

    wasm = tmp_path / "hello.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(HELLO_WAT.read_text()))
    shared = rt.shared.get(rt.cache.load(wasm, "sha256:" + "2" * 64))
    shared.record_instantiated(64 * MiB, 10.0)
    assert shared.instantiated_within(64 * MiB, 10.0)
    assert shared.instantiated_within(128 * MiB, 30.0)
    assert not shared.instantiated_within(32 * MiB, 10.0)
    assert not shared.instantiated_within(64 * MiB, 5.0)


@pytest.mark.slow
async def test_apps_sharing_a_linker_keep_their_own_variables_store_and_hosts(
    tmp_path: Path, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPIN_VARIABLE_API_KEY", "from-env")
    wasm = build_python_app(FIXTURES_DIR / "spin_py_kv")
    runtime = Runtime(cache_root() / "runtime-spin")  # compiling this component takes seconds: reuse it
    try:
        def app(name: str, allowed: list[str]) -> object:
            return loaded_app(
                component("web", wasm, metadata={"key_value_stores": ["default"], "allowed_outbound_hosts": allowed},
                          config={"greeting": "{{ greeting }}"}),
                name=name,
                variables={"greeting": Variable(default="hello"), "api_key": Variable(secret=True)},
            )

        allowed = [f"http://127.0.0.1:{upstream.port}"]
        a = await runtime.load_app(app("a", allowed), settings(tmp_path / "a", greeting="from-a"))  # type: ignore[arg-type]
        b = await runtime.load_app(app("b", []), settings(tmp_path / "b", greeting="from-b"))  # type: ignore[arg-type]
        assert a.slots["web"].guest.linker is b.slots["web"].guest.linker

        # Concurrently, many times over: a host function must find its own app's state.
        results = await asyncio.gather(*(get(x, "/var/greeting") for _ in range(10) for x in (a, b)))
        assert results == [(200, b"from-a"), (200, b"from-b")] * 10
        assert await get(a, "/kv/default/k", method="PUT", body=b"only a") == (200, b"stored")
        assert await get(b, "/kv/default/k") == (404, b"missing")
        assert await get(b, "/kv/default/k", method="PUT", body=b"only b") == (200, b"stored")
        assert await get(a, "/kv/default/k") == (200, b"only a")
        url = f"http://127.0.0.1:{upstream.port}/x"
        assert await get(a, "/out", query=f"url={url}") == (200, b"201 echo:")
        assert await get(b, "/out", query=f"url={url}") == (502, b"ErrorCode_HttpRequestDenied")
        assert len(upstream.requests) == 1  # b's denied request never left
    finally:
        runtime.close()
