"""Core-module memory access (Spin 1.x modules, WAGI) and opt-in allocator tuning."""

from __future__ import annotations

import ctypes
from typing import Any

import wasmtime


def read_memory(memory: wasmtime.Memory, store: Any, ptr: int, length: int) -> bytes:
    """``length`` bytes of a core module's memory at ``ptr``; IndexError when out of bounds.

    ``Memory.read`` clamps a range like a slice (a guest pointer past the end yields fewer bytes,
    silently) and copies twice; a guest-supplied (ptr, len) must instead be checked, as Spin traps.
    """
    size = memory.data_len(store)
    if ptr < 0 or length < 0 or ptr + length > size:
        raise IndexError(f"guest range {ptr}+{length} is outside memory of {size} bytes")
    if length == 0:
        return b""
    base = ctypes.cast(memory.data_ptr(store), ctypes.c_void_p).value
    assert base is not None
    return ctypes.string_at(base + ptr, length)


def write_memory(memory: wasmtime.Memory, store: Any, ptr: int, data: bytes | bytearray | memoryview) -> None:
    """Copy ``data`` into a core module's memory at ``ptr``; IndexError when out of bounds."""
    view = memoryview(data).cast("B")
    size = memory.data_len(store)
    if ptr < 0 or ptr + len(view) > size:
        raise IndexError(f"guest range {ptr}+{len(view)} is outside memory of {size} bytes")
    if len(view) == 0:
        return
    base = ctypes.cast(memory.data_ptr(store), ctypes.c_void_p).value
    assert base is not None
    target = (ctypes.c_ubyte * len(view)).from_address(base + ptr)
    memoryview(target).cast("B")[:] = view


MiB = 1024 * 1024
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_allocator(mmap_threshold: int = 64 * MiB, trim_threshold: int = 128 * MiB) -> bool:
    """Opt-in glibc tuning for multi-MiB ``list<u8>`` values. Returns whether it took effect.

    A 1 MiB ``list<u8>`` crosses the C API as 1 Mi 32-byte values, so every conversion allocates
    tens of MiB (wasmtime's ``Vec<Val>``, the C value array). Above glibc's mmap threshold (at most
    32 MiB by default) each of those is a fresh mmap whose pages fault in one by one: ~12 ms per
    32 MiB here, a large share of a conversion. Raising the mmap threshold keeps such blocks on the
    heap, and the trim threshold lets freed blocks be reused instead of returned to the kernel.
    The cost is memory: up to ``trim_threshold`` of freed heap stays resident. Process-wide; call
    once at startup if bodies of several MiB matter more than that memory. No-op without glibc.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    )
