"""PAGEMAP_SCAN reset of pooled memory: switched on only where the config layout checks out, and
then a freed slot's written pages stay mapped (no page faults for the next instance) while every
instance still starts from the pristine memory image."""

from __future__ import annotations

import resource

import pytest
import wasmtime
from wasmtime import Instance, Module, Store

from runtime.engine import instance_pool, pagemap_scan
from runtime.engine.config import _base_config
from runtime.engine.patches.state import wasmtime_version

MiB = 1 << 20
PAGES_TOUCHED = 64
FIRST_TOUCHED = 8 * MiB  # beyond the 1 MiB kept resident below, so only PAGEMAP_SCAN keeps them
STRIDE = 64 * 1024

# Each touched page starts as 1 in the memory image; `touch` sums them, then overwrites each with
# 0x7f. A fresh instance must always sum to PAGES_TOUCHED.
_DATA = "\n".join(f'  (data (i32.const {FIRST_TOUCHED + k * STRIDE}) "\\01")' for k in range(PAGES_TOUCHED))
TOUCHER = f"""(module
  (memory 256)
{_DATA}
  (func (export "touch") (result i32) (local $k i32) (local $sum i32) (local $at i32)
    (loop $next
      (local.set $at (i32.add (i32.const {FIRST_TOUCHED}) (i32.mul (local.get $k) (i32.const {STRIDE}))))
      (local.set $sum (i32.add (local.get $sum) (i32.load8_u (local.get $at))))
      (i32.store8 (local.get $at) (i32.const 0x7f))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $k) (i32.const {PAGES_TOUCHED}))))
    (local.get $sum)))"""


def engine(*, pagemap: bool) -> wasmtime.Engine:
    config = _base_config()
    instance_pool.configure(config, instance_pool.PoolLimits(
        component_instances=4, keep_resident_bytes=MiB, warm_slots=1, pagemap_scan=pagemap))
    return wasmtime.Engine(config)


def fresh_store(engine: wasmtime.Engine) -> Store:
    store = Store(engine)
    store.set_epoch_deadline(1 << 30)  # the engine interrupts on epochs; nothing ticks here
    return store


def faults_per_fresh_instance(engine: wasmtime.Engine, rounds: int = 20) -> float:
    module = Module(engine, TOUCHER)
    for _ in range(3):  # the slot becomes this module's warm slot
        store = fresh_store(engine)
        assert Instance(store, module, []).exports(store)["touch"](store) == PAGES_TOUCHED
        store.close()
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(rounds):
        store = fresh_store(engine)
        touch = Instance(store, module, []).exports(store)["touch"]
        # Fresh means fresh: the previous instance's writes are gone.
        assert touch(store) == PAGES_TOUCHED
        store.close()
    return (resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before) / rounds


def test_the_pinned_wasmtime_matches_its_recorded_config_layout() -> None:
    version = wasmtime_version()
    assert version in pagemap_scan.LAYOUTS, f"record the pooling config layout of wasmtime-py {version}"
    assert pagemap_scan.check_layout(pagemap_scan.LAYOUTS[version]) is None


def test_a_layout_that_does_not_match_is_refused() -> None:
    layout = pagemap_scan.LAYOUTS[wasmtime_version() or ""]
    shifted = pagemap_scan.ConfigLayout(
        setter_offsets={**layout.setter_offsets, "total_memories": (56, 4)},
        memory_protection_keys=layout.memory_protection_keys, pagemap_scan=layout.pagemap_scan,
        async_stack_zeroing=layout.async_stack_zeroing)
    assert pagemap_scan.check_layout(shifted) == "total_memories is not at byte 56"
    moved = pagemap_scan.ConfigLayout(
        setter_offsets=layout.setter_offsets, memory_protection_keys=layout.memory_protection_keys,
        pagemap_scan=128, async_stack_zeroing=layout.async_stack_zeroing)
    assert "not the defaults" in (pagemap_scan.check_layout(moved) or "")


@pytest.mark.skipif(not pagemap_scan.kernel_supports(), reason="kernel without PAGEMAP_SCAN (Linux < 6.7)")
def test_with_pagemap_scan_a_fresh_instance_takes_no_faults_on_pages_the_last_one_wrote() -> None:
    assert pagemap_scan.availability().enabled
    without = faults_per_fresh_instance(engine(pagemap=False))
    with_scan = faults_per_fresh_instance(engine(pagemap=True))
    # Without the scan, the touched pages lie past the 1 MiB kept resident: handed back to the
    # kernel and faulted in again (a read fault and a copy-on-write fault each).
    assert without >= PAGES_TOUCHED, without
    assert with_scan < PAGES_TOUCHED / 4, (with_scan, without)
