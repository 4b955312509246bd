"""wasmtime's PAGEMAP_SCAN memory reset, switched on where its C API cannot reach it.

When a pooled instance's memory slot is freed, wasmtime resets it for the next instance. With
``linear_memory_keep_resident`` set and its ``pagemap_scan`` option on, it asks Linux (the
``PAGEMAP_SCAN`` ioctl of ``/proc/self/pagemap``, Linux 6.7+) which pages the guest wrote and copies
just those back from the memory image, keeping every page mapped: the next instance of the same
component takes no page faults on them. Without the option, "keep resident" means memsetting the
first N bytes of the slot whether the guest touched them or not, and the rest is handed back to the
kernel (``madvise``) and faulted in again by the next instance: about 340 page faults per Python
spin-sdk request. The reset is wasmtime's own; every instance still starts from the component's
pristine memory image, so a fresh instance per request is exactly as fresh as before.

wasmtime's C API (and so wasmtime-py) has no setter for ``pagemap_scan``; it defaults to off. The
option is a one-byte field of the pooling configuration that ``wasmtime_pooling_allocation_config_new``
returns. :func:`enable` writes ``Enabled::Auto`` there (wasmtime itself then checks the kernel and
falls back to its default reset where the ioctl is missing) only when every check holds:

* the wasmtime-py version is one this layout was read from (:data:`LAYOUTS`);
* in a probe configuration, every C setter writes its field at the offset recorded for it, and the
  two ``Enabled`` bytes and the flag beside them hold their defaults (``No``, ``No``, ``false``).

Otherwise it changes nothing and says why. ``LEPTON_PAGEMAP_SCAN=0`` leaves it off regardless. The neighbouring byte is ``memory_protection_keys``,
whose ``Auto`` also falls back cleanly, so even a wrong offset within the checked struct could not
make the Engine refuse to start.
"""

from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass
from typing import Any

from wasmtime import _ffi as ffi

from runtime.engine.patches.state import wasmtime_version

PAGEMAP_SCAN_ENV = "LEPTON_PAGEMAP_SCAN"

# wasmtime's `Enabled` enum: Auto, Yes, No (read back from the defaults and from what `Yes` does).
ENABLED_AUTO = 0
ENABLED_NO = 2


@dataclass(frozen=True)
class ConfigLayout:
    """Where the C setters' fields and the two `Enabled` bytes sit in one build's pooling config."""

    setter_offsets: dict[str, tuple[int, int]]  # setter suffix -> (byte offset, width)
    memory_protection_keys: int
    pagemap_scan: int
    async_stack_zeroing: int


_WASMTIME_50 = ConfigLayout(
    setter_offsets={
        "max_component_instance_size": (0, 8),
        "max_core_instance_size": (8, 8),
        "table_elements": (16, 8),
        "max_memory_size": (24, 8),
        "total_component_instances": (32, 4),
        "total_core_instances": (36, 4),
        "max_core_instances_per_component": (40, 4),
        "max_memories_per_component": (44, 4),
        "max_tables_per_component": (48, 4),
        "total_memories": (52, 4),
        "total_tables": (56, 4),
        "total_stacks": (60, 4),
        "max_tables_per_module": (64, 4),
        "max_memories_per_module": (68, 4),
        "total_gc_heaps": (72, 4),
        "decommit_batch_size": (80, 8),
        "async_stack_keep_resident": (96, 8),
        "linear_memory_keep_resident": (104, 8),
        "table_keep_resident": (112, 8),
        "max_unused_warm_slots": (128, 4),
    },
    memory_protection_keys=132,
    pagemap_scan=133,
    async_stack_zeroing=134,
)

#: wasmtime-py versions whose libwasmtime this layout was read from (and tested with).
LAYOUTS = {"50.0.1": _WASMTIME_50}


def _bytes_at(pointer: Any, size: int) -> bytes:
    return ctypes.string_at(ctypes.cast(pointer, ctypes.c_void_p).value or 0, size)


def _setter(name: str) -> Any:
    return getattr(ffi, f"wasmtime_pooling_allocation_config_{name}_set", None)


def check_layout(layout: ConfigLayout) -> str | None:
    """None when this libwasmtime's pooling config matches `layout`; else what did not match."""
    size = max(layout.async_stack_zeroing, *(o + w for o, w in layout.setter_offsets.values())) + 1
    pool = ffi.wasmtime_pooling_allocation_config_new()
    try:
        defaults = _bytes_at(pool, size)
        enabled = (defaults[layout.memory_protection_keys], defaults[layout.pagemap_scan],
                   defaults[layout.async_stack_zeroing])
        if enabled != (ENABLED_NO, ENABLED_NO, 0):
            return f"the option bytes hold {enabled}, not the defaults (2, 2, 0)"
        for index, (name, (offset, width)) in enumerate(sorted(layout.setter_offsets.items())):
            setter = _setter(name)
            if setter is None:
                return f"wasmtime_pooling_allocation_config_{name}_set is missing"
            probe = 0x5A00 + index  # distinct per field, fits every width
            setter(pool, probe)
            written = _bytes_at(pool, size)
            if written[offset:offset + width] != probe.to_bytes(width, "little"):
                return f"{name} is not at byte {offset}"
        after = _bytes_at(pool, size)
        if (after[layout.memory_protection_keys], after[layout.pagemap_scan]) != (ENABLED_NO, ENABLED_NO):
            return "a setter wrote over the option bytes"
        return None
    finally:
        ffi.wasmtime_pooling_allocation_config_delete(pool)


def kernel_supports() -> bool:
    """Whether this kernel answers PAGEMAP_SCAN (the same probe wasmtime makes for `Auto`)."""
    pagemap_scan_request = 0xC0606610  # _IOWR('f', 16, struct pm_scan_arg)
    # struct pm_scan_arg: size, flags, start, end, walk_end, vec, vec_len, max_pages,
    # category_inverted, category_mask, category_anyof_mask, return_mask (all u64).
    region = ctypes.create_string_buffer(24)  # one struct page_region
    arg = ctypes.create_string_buffer(struct.pack(
        "<12Q", 96, 0, 0, 0, 0, ctypes.addressof(region), 1, 1, 0, 0x7F, 0, 0))
    try:
        fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.ioctl(fd, ctypes.c_ulong(pagemap_scan_request), arg) >= 0
    finally:
        os.close(fd)


@dataclass(frozen=True)
class PagemapScan:
    """Whether the pool's memory reset uses PAGEMAP_SCAN, and if not, why not."""

    enabled: bool
    reason: str


def availability() -> PagemapScan:
    """Whether :func:`enable` would switch PAGEMAP_SCAN on in this process."""
    setting = os.environ.get(PAGEMAP_SCAN_ENV, "").strip()
    if setting not in ("", "0", "1", "auto"):
        raise ValueError(f"{PAGEMAP_SCAN_ENV}={setting!r}: expected 0, 1 or auto")
    if setting == "0":
        return PagemapScan(False, f"{PAGEMAP_SCAN_ENV}=0")
    version = wasmtime_version()
    layout = LAYOUTS.get(version or "")
    if layout is None:
        return PagemapScan(False, f"wasmtime-py {version} is not a version whose pooling config layout is known")
    mismatch = check_layout(layout)
    if mismatch is not None:
        return PagemapScan(False, f"wasmtime-py {version}'s pooling config does not match its known layout: {mismatch}")
    if not kernel_supports():
        return PagemapScan(False, "this kernel has no PAGEMAP_SCAN ioctl (Linux 6.7+)")
    return PagemapScan(True, "on")


def enable(pool: Any) -> None:
    """Set `pagemap_scan` to Auto in the pooling config `pool` (call only when available())."""
    layout = LAYOUTS[wasmtime_version() or ""]
    address = ctypes.cast(pool, ctypes.c_void_p).value
    assert address
    ctypes.c_ubyte.from_address(address + layout.pagemap_scan).value = ENABLED_AUTO
