"""The pooling instance allocator: on by default, bounded, switchable, and optional where the
machine's address space is too small for it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import wasmtime
from wasmtime import Store
from wasmtime.component import Component, Linker

from runtime.engine import instance_pool
from runtime.engine.config import _base_config, make_engine

REPO = Path(__file__).resolve().parents[3]

# Any component with a memory: the pool hands out memory slots.
WITH_MEMORY = """(component
  (core module $m (memory (export "mem") 1))
  (core instance $i (instantiate $m)))"""


def instantiate(engine: wasmtime.Engine, component: Component) -> Store:
    store = Store(engine)
    Linker(engine).instantiate(store, component)
    return store


def test_a_pool_of_one_refuses_a_second_live_instance_and_reuses_the_slot() -> None:
    config = _base_config()
    instance_pool.configure(config, instance_pool.PoolLimits(component_instances=1))
    engine = wasmtime.Engine(config)
    component = Component(engine, WITH_MEMORY)
    first = instantiate(engine, component)
    with pytest.raises(wasmtime.WasmtimeError, match="concurrent"):
        instantiate(engine, component)
    first.close()  # the slot goes back to the pool ...
    for _ in range(3):
        instantiate(engine, component).close()  # ... and is reused, request after request


def test_the_default_engine_pools_many_instances_at_once() -> None:
    engine = make_engine(concurrency=4)
    component = Component(engine, WITH_MEMORY)
    limits = instance_pool.PoolLimits.for_concurrency(4)
    stores = [instantiate(engine, component) for _ in range(limits.component_instances)]
    # The pool is bounded: one more than its size is refused (proves the pool is in use).
    with pytest.raises(wasmtime.WasmtimeError, match="concurrent"):
        instantiate(engine, component)
    for store in stores:
        store.close()


def test_lepton_pooling_0_allocates_on_demand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(instance_pool.POOLING_ENV, "0")
    engine = make_engine(concurrency=1)
    component = Component(engine, WITH_MEMORY)
    limits = instance_pool.PoolLimits.for_concurrency(1)
    stores = [instantiate(engine, component) for _ in range(limits.component_instances + 5)]
    for store in stores:
        store.close()


@pytest.mark.parametrize("value, expected", [("", None), ("auto", None), ("0", False), ("1", True)])
def test_pooling_override_values(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool | None) -> None:
    monkeypatch.setenv(instance_pool.POOLING_ENV, value)
    assert instance_pool.requested() is expected


def test_pooling_override_rejects_other_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(instance_pool.POOLING_ENV, "yes")
    with pytest.raises(ValueError, match="LEPTON_POOLING"):
        instance_pool.requested()


def test_a_small_address_space_falls_back_to_on_demand_allocation() -> None:
    # 64 GiB of address space cannot hold the pool's memory slots (4 GiB each): the engine must
    # still come up, say why in the log, and run guests.
    script = textwrap.dedent(
        f"""
        import logging, resource, sys
        sys.path.insert(0, {str(REPO)!r})
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
        resource.setrlimit(resource.RLIMIT_AS, (64 << 30, 64 << 30))
        from wasmtime import Store
        from wasmtime.component import Component, Linker
        from runtime.engine.config import make_engine
        engine = make_engine(concurrency=1)
        component = Component(engine, {WITH_MEMORY!r})
        store = Store(engine)
        Linker(engine).instantiate(store, component)
        print("instantiated")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pooling instance allocator unavailable" in out.stdout
    assert "instantiated" in out.stdout


async def test_a_component_bigger_than_a_pool_slot_is_refused_at_load(tmp_path: Path) -> None:
    from runtime import Runtime
    from runtime.errors import AppLoadError
    from runtime.testing import component, loaded_app
    from runtime.types import AppSettings

    instances = "\n".join(f"(core instance $i{i} (instantiate $m))" for i in range(70))
    wat = tmp_path / "wide.wat"
    wat.write_text(f"(component (core module $m (memory 1)) {instances})")
    rt = Runtime(tmp_path / "cache")
    try:
        with pytest.raises(AppLoadError, match=r"app 'wide', component 'c'.*pooling allocator"):
            await rt.load_app(loaded_app([component("c", wat)], name="wide"), AppSettings())
    finally:
        rt.close()


@pytest.mark.parametrize("value, pagemap_scan, expected", [
    ("", False, 0), ("", True, instance_pool.DEFAULT_KEEP_RESIDENT_MIB << 20),
    ("0", True, 0), ("16", False, 16 << 20), ("4", True, 4 << 20)])
def test_keep_resident_is_read_in_mib_and_defaults_on_only_with_pagemap_scan(
        monkeypatch: pytest.MonkeyPatch, value: str, pagemap_scan: bool, expected: int) -> None:
    monkeypatch.setenv(instance_pool.KEEP_RESIDENT_ENV, value)
    assert instance_pool.keep_resident(pagemap_scan=pagemap_scan) == expected


def test_keep_resident_rejects_other_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(instance_pool.KEEP_RESIDENT_ENV, "16MB")
    with pytest.raises(ValueError, match="LEPTON_KEEP_RESIDENT"):
        instance_pool.keep_resident(pagemap_scan=True)


def test_kept_resident_memory_is_bounded_by_one_warm_slot_per_thread() -> None:
    off = instance_pool.PoolLimits.for_concurrency(4)
    assert off.keep_resident_bytes == 0 and off.resident_bound == 0
    on = instance_pool.PoolLimits.for_concurrency(4, keep_resident_bytes=16 << 20)
    assert on.warm_slots == 4 and on.resident_bound == 64 << 20


def test_an_engine_keeping_memory_resident_still_reuses_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(instance_pool.KEEP_RESIDENT_ENV, "1")
    engine = make_engine(concurrency=2)
    component = Component(engine, WITH_MEMORY)
    for _ in range(20):  # more instances than warm slots, one after another
        instantiate(engine, component).close()
