"""wasmtime's pooling instance allocator: instance memory reused across requests.

Every request gets a fresh Store and instance (Spin's isolation). With wasmtime's default
on-demand allocator each of those maps a fresh linear-memory reservation (4 GiB of address space
plus guard pages) and unmaps it when the Store goes; the pooling allocator reserves a fixed set of
slots once, per Engine, and resets a slot (copy-on-write image, madvise) for the next instance.
Measured on the WAT hello through RunningApp.handle: 237 -> 191 us per request; Python spin-sdk
hello 2.9 -> 2.6 ms. Spin and `wasmtime serve` use it for the same reason.

wasmtime-py 50 has no Python API for it, so it is set through the C API functions its bindings
already load. The pool reserves address space up front (``total_memories`` slots of 4 GiB + guard),
which fails on a machine with a small address-space limit (``ulimit -v``, a 39-bit VM). wasmtime's
C API aborts the process when that happens, so :func:`fits` first reserves the same amount of
address space and releases it: where it does not fit, the engine allocates on demand (with a
warning), as Spin does. ``LEPTON_POOLING=0`` turns the pool off (``1`` skips the check).

``LEPTON_KEEP_RESIDENT`` (MiB) keeps up to that much of each freed memory slot resident instead of
handing it back to the kernel. Where wasmtime can reset a slot with PAGEMAP_SCAN
(runtime/engine/pagemap_scan.py: it copies back only the pages the guest wrote), that removes the
page faults of the next instance: Python spin-sdk hello, one caller, 344 -> 13 faults and
2.69 -> 2.06 ms of CPU per request (benchmarks/keep_resident_bench.py), so it defaults to
:data:`DEFAULT_KEEP_RESIDENT_MIB` there. Without PAGEMAP_SCAN it would memset the first N bytes
of every slot whatever the guest touched, which cost more user time than it saved, so it defaults
to 0. Warm slots kept are capped at one per guest thread, so it costs at most
threads x keep_resident of memory (in practice the pages guests actually wrote).
"""

from __future__ import annotations

import ctypes
import mmap
import os
from dataclasses import dataclass

from wasmtime import Config
from wasmtime import _ffi as ffi

from runtime.engine import pagemap_scan
from runtime.types import MiB

POOLING_ENV = "LEPTON_POOLING"
KEEP_RESIDENT_ENV = "LEPTON_KEEP_RESIDENT"
GiB = 1024 * MiB
# Address space of one memory slot: wasmtime's default 4 GiB reservation, its guard region and
# slack for alignment.
SLOT_BYTES = 4 * GiB + 64 * MiB
TABLE_ELEMENT_BYTES = 16
# Per slot, when PAGEMAP_SCAN resets slots: above the pages the Python spin-sdk hello writes per
# request (about 1 MiB), with room for heavier requests; pages beyond it go back to the kernel.
DEFAULT_KEEP_RESIDENT_MIB = 16
PROT_NONE = 0  # (not in Python's mmap module)
MAP_FAILED = ctypes.c_void_p(-1).value


@dataclass(frozen=True)
class PoolLimits:
    """Pool sizes. Instances beyond these fail to instantiate (the request gets a 500), so the
    totals are sized from the most instances that can be alive at once: one per worker thread plus
    inline runs on event loops, with a wide margin."""

    component_instances: int
    # Per component: a componentize-py or StarlingMonkey component links a dozen core modules.
    core_instances_per_component: int = 64
    memories_per_component: int = 16
    tables_per_component: int = 64
    table_elements: int = 200_000  # per table: SpiderMonkey-based components need tens of thousands
    max_memory_bytes: int = 4 * GiB  # wasm32's ceiling: the per-app limit is the Store's, not the pool's
    max_instance_bytes: int = 4 * MiB  # vmctx of one core/component instance
    # Bytes of each freed memory slot kept resident (memset on reuse instead of madvise), and the
    # most freed slots kept warm while they are: together they bound the memory this costs.
    keep_resident_bytes: int = 0
    warm_slots: int = 100  # wasmtime's default
    # Reset freed slots with PAGEMAP_SCAN (only the pages written; see runtime/engine/pagemap_scan.py).
    pagemap_scan: bool = False

    @classmethod
    def for_concurrency(cls, threads: int, *, keep_resident_bytes: int = 0, pagemap_scan: bool = False) -> PoolLimits:
        if keep_resident_bytes:
            return cls(component_instances=4 * threads + 32, keep_resident_bytes=keep_resident_bytes,
                       warm_slots=threads, pagemap_scan=pagemap_scan)
        return cls(component_instances=4 * threads + 32, pagemap_scan=pagemap_scan)

    @property
    def resident_bound(self) -> int:
        """Most memory the kept-resident slots can hold when no instance is running."""
        return self.keep_resident_bytes * self.warm_slots

    @property
    def memories(self) -> int:
        # Most components have one or two memories, and the byte bridge (runtime/engine/byte_bridge.py)
        # adds one; the address space is what this costs.
        return 3 * self.component_instances

    @property
    def core_instances(self) -> int:
        # A componentize-py component instantiates 14 core modules; the byte bridge adds two.
        return 24 * self.component_instances

    @property
    def tables(self) -> int:
        return 8 * self.component_instances

    @property
    def address_space(self) -> int:
        """About how much address space the pool reserves when the Engine is created."""
        return self.memories * SLOT_BYTES + self.tables * self.table_elements * TABLE_ELEMENT_BYTES + GiB


def requested() -> bool | None:
    """The LEPTON_POOLING override: True, False, or None (use the pool where the machine allows)."""
    value = os.environ.get(POOLING_ENV, "").strip()
    if value in ("", "auto"):
        return None
    if value in ("0", "1"):
        return value == "1"
    raise ValueError(f"{POOLING_ENV}={value!r}: expected 0, 1 or auto")


def keep_resident(*, pagemap_scan: bool) -> int:
    """The LEPTON_KEEP_RESIDENT setting in bytes (the variable is in MiB). Unset, it is
    DEFAULT_KEEP_RESIDENT_MIB where slots are reset with PAGEMAP_SCAN, else 0."""
    value = os.environ.get(KEEP_RESIDENT_ENV, "").strip()
    if not value:
        return DEFAULT_KEEP_RESIDENT_MIB * MiB if pagemap_scan else 0
    if not value.isdigit():
        raise ValueError(f"{KEEP_RESIDENT_ENV}={value!r}: expected a whole number of MiB, e.g. 16")
    return int(value) * MiB


def fits(limits: PoolLimits) -> bool:
    """Whether the pool's address space can be reserved now (reserved and released again)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0)
    size = limits.address_space
    address = libc.mmap(None, size, PROT_NONE, flags, -1, 0)
    if address in (None, MAP_FAILED):
        return False
    libc.munmap(address, size)
    return True


def configure(config: Config, limits: PoolLimits) -> None:
    """Switch `config` to pooling allocation with these limits (the Engine is not created yet)."""
    pool = ffi.wasmtime_pooling_allocation_config_new()
    try:
        for setter, value in (
            (ffi.wasmtime_pooling_allocation_config_total_component_instances_set, limits.component_instances),
            (ffi.wasmtime_pooling_allocation_config_total_core_instances_set, limits.core_instances),
            (ffi.wasmtime_pooling_allocation_config_total_memories_set, limits.memories),
            (ffi.wasmtime_pooling_allocation_config_total_tables_set, limits.tables),
            (ffi.wasmtime_pooling_allocation_config_max_core_instances_per_component_set,
             limits.core_instances_per_component),
            (ffi.wasmtime_pooling_allocation_config_max_memories_per_component_set, limits.memories_per_component),
            (ffi.wasmtime_pooling_allocation_config_max_tables_per_component_set, limits.tables_per_component),
            (ffi.wasmtime_pooling_allocation_config_table_elements_set, limits.table_elements),
            (ffi.wasmtime_pooling_allocation_config_max_memory_size_set, limits.max_memory_bytes),
            (ffi.wasmtime_pooling_allocation_config_max_core_instance_size_set, limits.max_instance_bytes),
            (ffi.wasmtime_pooling_allocation_config_max_component_instance_size_set, limits.max_instance_bytes),
            (ffi.wasmtime_pooling_allocation_config_linear_memory_keep_resident_set, limits.keep_resident_bytes),
            (ffi.wasmtime_pooling_allocation_config_max_unused_warm_slots_set, limits.warm_slots),
        ):
            setter(pool, value)
        if limits.pagemap_scan:
            pagemap_scan.enable(pool)
        ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)
    finally:
        ffi.wasmtime_pooling_allocation_config_delete(pool)
